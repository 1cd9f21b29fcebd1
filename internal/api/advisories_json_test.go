package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/reeval"
	"github.com/bulwark-sec/bulwark/internal/vulndb"
)

// TestImportSummaryDurationsInSeconds: the import summary gives its
// durations in seconds ("durationSeconds": 1.5), not Go's nanoseconds
// ("duration": 1500000000), and decodes back.
func TestImportSummaryDurationsInSeconds(t *testing.T) {
	sum := AdvisoryImportSummary{
		Imports:     []vulndb.Result{{Source: "Go", Records: 3, Duration: 250 * time.Millisecond}},
		Revocations: []reeval.Revocation{},
		Duration:    1500 * time.Millisecond,
	}
	b, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"durationSeconds":1.5`, `"durationSeconds":0.25`, `"records":3`, `"imports":[`} {
		if !strings.Contains(s, want) {
			t.Errorf("%s lacks %s", s, want)
		}
	}
	if strings.Contains(s, `"duration":`) || strings.Contains(s, "1500000000") {
		t.Errorf("nanoseconds in %s", s)
	}
	var back AdvisoryImportSummary
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Duration != sum.Duration || back.Imports[0].Duration != 250*time.Millisecond || back.Imports[0].Records != 3 {
		t.Errorf("decoded %+v", back)
	}
}
