package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/pgtest"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// TestTwoReplicasRunEachJobOnce: two servers on one real PostgreSQL, with
// two workers each, share 24 scans queued while both poll; every job runs exactly once and
// both replicas take part.
func TestTwoReplicasRunEachJobOnce(t *testing.T) {
	dsn := pgtest.Start(t)
	reg := registrytest.New(t)
	reg.Push(t, "team/app:1", testImage(t))

	st, err := store.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, instance := range []string{"replica-a", "replica-b"} {
		_, stop := startServerWith(t, t.TempDir(), func(c *Config) {
			c.Instance = instance
			c.Database = dsn
			c.WatchInterval = time.Hour
		})
		defer stop()
	}

	// queued once both replicas are polling
	const jobs = 24
	payload, _ := json.Marshal(api.ScanPayload{Image: reg.Ref("team/app:1")})
	var ids []int64
	for range jobs {
		id, err := st.EnqueueJob(t.Context(), api.JobScan, payload, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	deadline := time.Now().Add(30 * time.Second)
	claimedBy := map[string]int{}
	for _, id := range ids {
		for {
			j, err := st.Job(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if j.State == store.JobDone {
				if j.Attempts != 1 {
					t.Errorf("job %d ran %d times", id, j.Attempts)
				}
				replica, _, _ := strings.Cut(j.ClaimedBy, "/")
				claimedBy[replica]++
				break
			}
			if j.State == store.JobFailed || time.Now().After(deadline) {
				t.Fatalf("job %d: %s (%s)", id, j.State, j.Error)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("jobs per replica: %v", claimedBy)
	if claimedBy["replica-a"] == 0 || claimedBy["replica-b"] == 0 {
		t.Errorf("one replica did all %d jobs: %v", jobs, claimedBy)
	}
}
