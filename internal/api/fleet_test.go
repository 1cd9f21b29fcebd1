package api

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/respond"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// One respond job per drifted container of a batch; none for the execs a
// learning window allowed.
func TestQueueDriftResponses(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	evs := []store.RuntimeEvent{
		{ID: 1, Node: "n1", Container: "c1", Verdict: "refused", Reason: "not-in-image", Path: "/tmp/x", Time: now},
		{ID: 2, Node: "n1", Container: "c1", Verdict: "refused", Reason: "not-in-image", Path: "/tmp/y", Time: now},
		{ID: 3, Node: "n1", Container: "c2", Verdict: "reported", Reason: reasonLearning, Path: "/bin/new", Time: now},
		{ID: 4, Node: "n2", Container: "c1", Verdict: "reported", Reason: "unreadable", Path: "/tmp/z", Time: now},
	}
	if err := queueDriftResponses(t.Context(), st, evs); err != nil {
		t.Fatal(err)
	}
	var n int
	st.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM jobs WHERE kind = ?`, respond.JobKind).Scan(&n)
	if n != 2 {
		t.Errorf("%d respond jobs, want 2 (n1/c1 once, n2/c1; not the learned exec)", n)
	}
}
