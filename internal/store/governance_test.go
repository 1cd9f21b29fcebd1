package store

import (
	"context"
	"testing"
	"time"
)

// TestGovernanceRows on both backends: flows count up per (node,
// container, destination) and keep the latest time; an alert key is new
// once; drift is read after an id; a deleted secret takes its versions.
func TestGovernanceRows(t *testing.T) {
	eachBackend(t, func(t *testing.T, open storeFactory) {
		ctx := context.Background()
		s, _ := open(t)
		t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
		f := DataFlow{Node: "n", Container: "c", Destination: "10.0.0.1:5432", Service: "svc", Region: "eu", Count: 2, First: t0, Last: t0}
		if err := s.AddDataFlows(ctx, []DataFlow{f}); err != nil {
			t.Fatal(err)
		}
		f.Count, f.Last = 3, t0.Add(time.Minute)
		old := f
		old.Count, old.Last = 1, t0.Add(-time.Hour)
		if err := s.AddDataFlows(ctx, []DataFlow{f, old}); err != nil {
			t.Fatal(err)
		}
		got, err := s.DataFlows(ctx)
		if err != nil || len(got) != 1 || got[0].Count != 6 || !got[0].Last.Equal(t0.Add(time.Minute)) || !got[0].First.Equal(t0) {
			t.Fatalf("flows = %+v %v", got, err)
		}
		for i, want := range []bool{true, false} {
			if fresh, err := s.NewGovernanceAlert(ctx, "k"); err != nil || fresh != want {
				t.Fatalf("alert %d: %v %v", i, fresh, err)
			}
		}
		evs, err := s.AddRuntimeEvents(ctx, []RuntimeEvent{{Node: "n", Spool: "s", Seq: 1, Time: t0, Verdict: "refused", Container: "c"},
			{Node: "n", Spool: "s", Seq: 2, Time: t0, Verdict: "reported", Container: "d"}})
		if err != nil {
			t.Fatal(err)
		}
		ds, err := s.DriftSince(ctx, evs[0].ID, 10)
		if err != nil || len(ds) != 1 || ds[0].Container != "d" {
			t.Fatalf("drift since %d: %+v %v", evs[0].ID, ds, err)
		}
		if _, err := s.PutVaultVersion(ctx, VaultSecret{Name: "a/b", Kind: "kv", Classes: "[]", Policy: "{}"}, 0,
			VaultVersion{KEK: "file", WrappedKey: []byte{1}, Ciphertext: []byte{2}}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteVaultSecret(ctx, "a/b"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.VaultVersion(ctx, "a/b", 1); err == nil {
			t.Fatal("a version of a deleted secret")
		}
		if err := s.DeleteVaultSecret(ctx, "a/b"); err == nil {
			t.Fatal("deleted twice")
		}
	})
}
