package server

import (
	"encoding/json"
	"fmt"
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
	const jobs = 24
	img := testImage(t)
	for i := range jobs {
		reg.Push(t, fmt.Sprintf("team/app:%d", i), img)
	}

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
	var ids []int64
	for i := range jobs {
		payload, _ := json.Marshal(api.ScanPayload{Image: reg.Ref(fmt.Sprintf("team/app:%d", i))})
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

// TestTwoReplicasPollOnce: two servers on one PostgreSQL, both watching
// with a short interval: each interval's poll job is queued and run once,
// whichever replica ticks first.
func TestTwoReplicasPollOnce(t *testing.T) {
	dsn := pgtest.Start(t)
	st, err := store.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var stops []func()
	for _, instance := range []string{"replica-a", "replica-b"} {
		_, stop := startServerWith(t, t.TempDir(), func(c *Config) {
			c.Instance = instance
			c.Database = dsn
			c.WatchInterval = 300 * time.Millisecond
		})
		stops = append(stops, stop)
	}
	time.Sleep(2 * time.Second)
	for _, stop := range stops {
		stop()
	}
	rows, err := st.DB().Query(`SELECT payload, state, attempts, claimed_by FROM jobs WHERE kind = 'poll'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	slots := map[string]int{}
	by := map[string]int{}
	for rows.Next() {
		var (
			payload        []byte
			state, claimed string
			attempts       int
		)
		if err := rows.Scan(&payload, &state, &attempts, &claimed); err != nil {
			t.Fatal(err)
		}
		slots[string(payload)]++
		if state == store.JobDone {
			if attempts != 1 {
				t.Errorf("poll %s ran %d times", payload, attempts)
			}
			replica, _, _ := strings.Cut(claimed, "/")
			by[replica]++
		}
	}
	if len(slots) < 3 {
		t.Errorf("only %d poll slots in 2 s at a 300 ms interval", len(slots))
	}
	for slot, n := range slots {
		if n != 1 {
			t.Errorf("slot %s has %d poll jobs, want 1", slot, n)
		}
	}
	t.Logf("%d polls, run by %v", len(slots), by)
}
