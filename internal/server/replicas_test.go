package server

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/pgtest"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/vulndb"
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

// TestTwoReplicasReevaluateOnce: two servers on one PostgreSQL import the
// same advisory feed into their own advisory databases; the change set is
// re-evaluated once (one reevaluate job, done), every affected digest is
// revoked once with one audit entry and one notification event, and both
// replicas move their cursors.
func TestTwoReplicasReevaluateOnce(t *testing.T) {
	dsn := pgtest.Start(t)
	st, err := store.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const n = 50
	for i := range n {
		seedLodash(t, st, fmt.Sprintf("sha256:%064x", i+1))
	}
	feed := advisoryFeed(t, 0)
	var dirs []string
	var stops []func()
	for _, instance := range []string{"replica-a", "replica-b"} {
		dir := t.TempDir()
		dirs = append(dirs, dir)
		_, stop := startServerWith(t, dir, func(c *Config) {
			c.Instance = instance
			c.Database = dsn
			c.WatchInterval = time.Hour
			c.AdvisorySources = []string{"npm=" + feed}
			c.AdvisoryInterval = time.Hour
		})
		stops = append(stops, stop)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var revoked, events, jobs, done int
		st.DB().QueryRow(`SELECT COUNT(*) FROM certifications WHERE status = 'revoked'`).Scan(&revoked)
		st.DB().QueryRow(`SELECT COUNT(*) FROM jobs WHERE kind = $1 AND state = 'done'`, store.JobCertificationEvent).Scan(&events)
		st.DB().QueryRow(`SELECT COUNT(*), COUNT(*) FILTER (WHERE state = 'done') FROM jobs WHERE kind = $1`, JobReevaluate).Scan(&jobs, &done)
		if revoked == n && events == n && done == 1 {
			if jobs != 1 {
				t.Errorf("%d reevaluate jobs, want 1", jobs)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d of %d revoked, %d events, %d reevaluate jobs (%d done)", revoked, n, events, jobs, done)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Both replicas move their cursors: the one that did not re-evaluate
	// finds the job done.
	time.Sleep(2 * time.Second)
	for _, stop := range stops {
		stop()
	}
	var audits int
	st.DB().QueryRow(`SELECT COUNT(*) FROM audit_log WHERE action = 'certification.revoke'`).Scan(&audits)
	if audits != n {
		t.Errorf("%d certification.revoke entries for %d revocations", audits, n)
	}
	var claimedBy string
	st.DB().QueryRow(`SELECT claimed_by FROM jobs WHERE kind = $1`, JobReevaluate).Scan(&claimedBy)
	for _, dir := range dirs {
		adb, err := vulndb.Open(filepath.Join(dir, "osv.db"))
		if err != nil {
			t.Fatal(err)
		}
		ch, err := adb.ChangesSince(t.Context(), changeConsumer)
		adb.Close()
		if err != nil || len(ch.Records) != 0 {
			t.Errorf("replica %s: %d changes not consumed (%v)", dir, len(ch.Records), err)
		}
	}
	t.Logf("re-evaluated by %s", claimedBy)
}

// seedLodash stores a certified image of registry.test/r/app whose
// inventory holds lodash 4.17.15.
func seedLodash(t *testing.T, st *store.Store, d string) {
	t.Helper()
	inv := &sbom.SBOM{Schema: sbom.SchemaVersion, Source: sbom.Source{Kind: "registry", Digest: d},
		Packages: []sbom.Package{{Name: "lodash", Version: "4.17.15", Type: sbom.TypeNPM, PURL: "pkg:npm/lodash@4.17.15", Cataloger: "npm"}}}
	if err := st.PutInventory(t.Context(), d, inv, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.PutImage(t.Context(), store.Image{Digest: d, Repository: "registry.test/r/app"}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetCertification(t.Context(), d, store.Certified, ""); err != nil {
		t.Fatal(err)
	}
}
