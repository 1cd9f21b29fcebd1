package notify

import (
	"strings"
	"testing"
)

func TestDataAccessSummaryEscapes(t *testing.T) {
	ev := DataAccessViolated(DataAccess{Kind: "ungranted", Service: "<!channel>", Store: "customers-db", Class: "pii-eu",
		Regulations: []string{"gdpr"}, Node: "n", Region: "eu-west-1", Detail: "a & b"})
	s := Summary(ev)
	if !strings.Contains(s, "ungranted") || !strings.Contains(s, "customers-db") || strings.Contains(s, "<!channel>") || !strings.Contains(s, "a &amp; b") {
		t.Fatalf("summary %q", s)
	}
	if ev.Type != EventDataAccess || !KnownType(ev.Type) {
		t.Fatalf("type %q", ev.Type)
	}
}
