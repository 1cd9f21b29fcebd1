package store

import (
	"context"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/audit"
)

func TestObjectHistory(t *testing.T) { eachBackend(t, testObjectHistory) }

// ObjectHistory lists one object's entries of one action family, oldest
// first, with their documents; other objects and actions are left out.
func testObjectHistory(t *testing.T, open storeFactory) {
	s, _ := open(t)
	ctx := context.Background()
	const d = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
	for _, e := range []audit.Entry{
		{Actor: "system:scan", Action: "certification.deny", Object: d, After: []byte(`{"status":"not_certified"}`)},
		{Actor: "token:1", Action: "scan.request", Object: d},
		{Actor: "system:scan", Action: "certification.grant", Object: d, Before: []byte(`{"status":"not_certified"}`), After: []byte(`{"status":"certified"}`)},
		{Actor: "system:scan", Action: "certification.grant", Object: "sha256:other"},
		{Actor: "system:reevaluate", Action: "certification.revoke", Object: d, After: []byte(`{"status":"revoked"}`)},
	} {
		if _, err := s.Audited(ctx, func(*Store) ([]audit.Entry, error) { return []audit.Entry{e}, nil }); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ObjectHistory(ctx, d, "certification.")
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range got {
		actions = append(actions, e.Action)
	}
	if len(got) != 3 || actions[0] != "certification.deny" || actions[1] != "certification.grant" || actions[2] != "certification.revoke" {
		t.Fatalf("history = %v", actions)
	}
	if string(got[1].Before) != `{"status":"not_certified"}` || string(got[1].After) != `{"status":"certified"}` || got[0].Before != nil {
		t.Errorf("documents: %q %q %q", got[1].Before, got[1].After, got[0].Before)
	}
	if got[2].Actor != "system:reevaluate" || got[2].Time.IsZero() || got[2].Seq != 5 {
		t.Errorf("entry = %+v", got[2])
	}
	all, err := s.ObjectHistory(ctx, d, "")
	if err != nil || len(all) != 4 {
		t.Errorf("all entries: %d %v", len(all), err)
	}
	none, err := s.ObjectHistory(ctx, "sha256:unknown", "certification.")
	if err != nil || len(none) != 0 {
		t.Errorf("unknown object: %v %v", none, err)
	}
}
