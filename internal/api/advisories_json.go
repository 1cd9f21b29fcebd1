package api

import (
	"encoding/json"
	"math"
	"time"
)

// summaryJSON is AdvisoryImportSummary as encoded: the duration in seconds,
// not in Go's nanoseconds.
type summaryJSON struct {
	plainSummary
	DurationSeconds float64 `json:"durationSeconds"`
}

type plainSummary AdvisoryImportSummary

// MarshalJSON encodes the duration as durationSeconds (millisecond
// precision).
func (s AdvisoryImportSummary) MarshalJSON() ([]byte, error) {
	return json.Marshal(summaryJSON{plainSummary(s), math.Round(s.Duration.Seconds()*1000) / 1000})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *AdvisoryImportSummary) UnmarshalJSON(b []byte) error {
	var v summaryJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = AdvisoryImportSummary(v.plainSummary)
	s.Duration = time.Duration(v.DurationSeconds * float64(time.Second))
	return nil
}
