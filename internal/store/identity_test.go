package store

import (
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
)

// TestWorkloadFacts reads certification, first drift and heartbeat in
// one statement, on both backends, and CertificationChangesFrom lists
// from the first audit entry with seq 0.
func TestWorkloadFacts(t *testing.T) {
	eachBackend(t, func(t *testing.T, open storeFactory) {
		s, _ := open(t)
		ctx := t.Context()
		d := "sha256:" + "ab00000000000000000000000000000000000000000000000000000000000000"
		f, err := s.WorkloadFacts(ctx, d, "n1", "c1")
		if err != nil || f.Certification != nil || f.Drift != nil || !f.LastSeen.IsZero() {
			t.Fatalf("nothing known: %+v %v", f, err)
		}
		if err := s.PutImage(ctx, Image{Digest: d, Repository: "r.example/a"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Audited(ctx, func(tx *Store) ([]audit.Entry, error) {
			return []audit.Entry{{Actor: "t", Action: "certification.revoke", Object: d}}, tx.SetCertification(ctx, d, Revoked, "CVE-1")
		}); err != nil {
			t.Fatal(err)
		}
		s.PutNode(ctx, Node{Name: "n1", Mode: "detect", State: "detecting-only", Containers: "[]"})
		for i, c := range []string{"c1", "c1", "c2"} {
			if _, err := s.AddRuntimeEvents(ctx, []RuntimeEvent{{Node: "n1", Spool: "s", Seq: int64(i + 1), Time: time.Now(),
				Verdict: "reported", Path: "/tmp/x" + c, Container: c}}); err != nil {
				t.Fatal(err)
			}
		}
		f, err = s.WorkloadFacts(ctx, d, "n1", "c1")
		if err != nil || f.Certification == nil || f.Certification.Status != Revoked || f.Certification.Reason != "CVE-1" ||
			f.Drift == nil || f.Drift.Path != "/tmp/xc1" || f.LastSeen.IsZero() {
			t.Fatalf("facts: %+v %+v %v", f, f.Drift, err)
		}
		if f, _ = s.WorkloadFacts(ctx, d, "n2", "c1"); f.Drift != nil || !f.LastSeen.IsZero() {
			t.Fatalf("another node's container: %+v", f)
		}
		ds, last, err := s.CertificationChangesFrom(ctx, 0)
		if err != nil || len(ds) != 1 || ds[0] != d || last < 1 {
			t.Fatalf("changes from the first entry: %v %d %v", ds, last, err)
		}
	})
}
