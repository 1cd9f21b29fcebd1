package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/pgtest"
)

// replica opens a second store on s's database, as another server replica
// would.
func replica(t testing.TB, s *Store) *Store {
	t.Helper()
	r, err := Open(context.Background(), s.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	r.Now = s.Now
	return r
}

// TestClaimJobReplicas claims 100 jobs from two store instances on one
// database, 8 workers each: every job is claimed exactly once.
func TestClaimJobReplicas(t *testing.T) { eachBackend(t, testClaimJobReplicas) }

func testClaimJobReplicas(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	a, _ := newStore(t)
	b := replica(t, a)
	for i := range 100 {
		if _, err := a.EnqueueJob(ctx, "scan", fmt.Appendf(nil, "%d", i), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	workers := map[string]*Store{}
	for r, s := range []*Store{a, b} {
		for w := range 8 {
			workers[fmt.Sprintf("replica-%d/worker-%d", r, w)] = s
		}
	}
	claimed := claimAll(t, workers)
	if len(claimed) != 100 {
		t.Errorf("%d jobs claimed, want 100", len(claimed))
	}
	byReplica := map[string]int{}
	for _, w := range claimed {
		byReplica[w[:len("replica-0")]]++
	}
	t.Logf("claims per replica: %v", byReplica)
}

// TestAuditReplicas appends to the audit log from two store instances at
// once, in Tx: the chain stays linear and verifies.
func TestAuditReplicas(t *testing.T) { eachBackend(t, testAuditReplicas) }

func testAuditReplicas(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	a, _ := newStore(t)
	b := replica(t, a)
	const perReplica = 25
	var wg sync.WaitGroup
	for r, s := range []*Store{a, b} {
		for i := range perReplica {
			wg.Add(1)
			go func() {
				defer wg.Done()
				digest := fmt.Sprintf("sha256:%d-%d", r, i)
				err := s.Tx(ctx, func(tx *sql.Tx) error {
					if _, err := tx.ExecContext(ctx, `INSERT INTO certifications (digest, status, updated) VALUES ($1, 'certified', 'x')`, digest); err != nil {
						return err
					}
					_, err := audit.Append(ctx, tx, audit.Entry{Actor: fmt.Sprintf("replica-%d", r), Action: "certification.set",
						Object: digest, After: []byte(`{"status": "certified"}`)})
					return err
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	rep, err := audit.Verify(ctx, b.DB())
	if err != nil || !rep.OK || rep.Entries != 2*perReplica {
		t.Errorf("audit.Verify = %+v, %v; want OK with %d entries", rep, err, 2*perReplica)
	}
}

// TestPostgresConcurrentMigrations opens four stores on one fresh
// PostgreSQL database at once: the advisory lock lets one migrate and the
// others find the schema current.
func TestPostgresConcurrentMigrations(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Start(t)
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(ctx, dsn)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("store %d: %v", i, errs[i])
		}
		defer stores[i].Close()
		if stores[i].Dialect() != "postgres" {
			t.Errorf("Open(postgres://...) gave a %s store", stores[i].Dialect())
		}
	}
	var rows, v int
	if err := stores[0].DB().QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_version`).Scan(&rows, &v); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || v != SchemaVersion {
		t.Errorf("schema_version has %d rows, version %d; want 1 row, %d", rows, v, SchemaVersion)
	}
	if err := stores[1].PutImage(ctx, Image{Digest: "sha256:a", Repository: "r"}); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[2].Image(ctx, "sha256:a"); err != nil {
		t.Error(err)
	}
}

func TestPostgresOpenTwiceAndNewerSchema(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Start(t)
	s, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutImage(ctx, Image{Digest: "sha256:a", Repository: "r"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Image(ctx, "sha256:a"); err != nil {
		t.Errorf("image lost on reopening: %v", err)
	}
	if v, err := s.SchemaVersionOf(ctx); err != nil || v != SchemaVersion {
		t.Errorf("schema version %d, %v; want %d", v, err, SchemaVersion)
	}
	// before/after must be TEXT: JSONB would re-encode what was hashed.
	var typ string
	s.DB().QueryRow(`SELECT data_type FROM information_schema.columns WHERE table_name = 'audit_log' AND column_name = 'after'`).Scan(&typ)
	if typ != "text" {
		t.Errorf("audit_log.after is %q, want text", typ)
	}
	s.DB().Exec(`UPDATE schema_version SET version = 99`)
	s.Close()
	if _, err := OpenPostgres(ctx, dsn); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("opening a newer schema: %v", err)
	}
}

func TestIsPostgresDSN(t *testing.T) {
	for dsn, want := range map[string]bool{
		"postgres://u@h/db":         true,
		"postgresql://u:p@h:5432/d": true,
		"/var/lib/bulwark/db":       false,
		"postgres.db":               false,
	} {
		if got := IsPostgresDSN(dsn); got != want {
			t.Errorf("IsPostgresDSN(%q) = %v", dsn, got)
		}
	}
}
