package store

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
)

// clock is a settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newStore opens a store in a temporary directory with a fake clock.
func newStore(t testing.TB) (*SQLite, *clock) {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c := newClock()
	s.Now = c.Now
	return s, c
}

func TestOpenTwiceIsIdempotent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "bulwark.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutImage(ctx, Image{Digest: "sha256:a", Repository: "r"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	defer s.Close()
	var v int
	if err := s.DB().QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != SchemaVersion {
		t.Errorf("user_version = %d, want %d", v, SchemaVersion)
	}
	if _, err := s.Image(ctx, "sha256:a"); err != nil {
		t.Errorf("data lost across opens: %v", err)
	}
	var mode string
	s.DB().QueryRow("PRAGMA journal_mode").Scan(&mode)
	var fk int
	s.DB().QueryRow("PRAGMA foreign_keys").Scan(&fk)
	if mode != "wal" || fk != 1 {
		t.Errorf("journal_mode %q, foreign_keys %d; want wal, 1", mode, fk)
	}
}

func TestOpenNewerSchemaFails(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bulwark.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.DB().Exec("PRAGMA user_version = 99")
	s.Close()
	if _, err := Open(ctx, path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a newer schema: %v, want an error saying newer", err)
	}
}

func TestTxRollsBack(t *testing.T) { eachBackend(t, testTxRollsBack) }

func testTxRollsBack(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, _ := newStore(t)
	boom := errors.New("boom")
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO certifications (digest, status, updated) VALUES ('sha256:a', 'certified', 'x')`); err != nil {
			t.Fatal(err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx = %v, want boom", err)
	}
	if _, err := s.Certification(ctx, "sha256:a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("row of a rolled back Tx: %v", err)
	}
}

func TestDialect(t *testing.T) {
	if got := postgresDialect.q("SELECT a FROM t WHERE b = ? AND c IN (?, ?)"); got != "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)" {
		t.Errorf("postgres rebind: %s", got)
	}
	if got := sqliteDialect.q("b = ?"); got != "b = ?" {
		t.Errorf("sqlite rebind: %s", got)
	}
	pg := postgresDialect.schema(migrations[0])
	if strings.Contains(pg, "{") || strings.Contains(pg, "BLOB") || !strings.Contains(pg, "BYTEA") {
		t.Errorf("postgres schema keeps SQLite types or holes:\n%s", pg)
	}
}

// TestAuditInTx records a certification and its audit entry in one
// transaction: the audit log lives in the store's database.
func TestAuditInTx(t *testing.T) { eachBackend(t, testAuditInTx) }

func testAuditInTx(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, c := newStore(t)
	for i, status := range []string{Certified, Revoked} {
		err := s.Tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO certifications (digest, status, updated) VALUES ('sha256:a', $1, $2)
				ON CONFLICT (digest) DO UPDATE SET status = excluded.status`, status, formatTime(c.Now())); err != nil {
				return err
			}
			_, err := audit.Append(ctx, tx, audit.Entry{Time: c.Now(), Actor: "test", Action: "certification.set",
				Object: "sha256:a", After: []byte(`{"status":"` + status + `"}`)})
			return err
		})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	rep, err := audit.Verify(ctx, s.DB())
	if err != nil || !rep.OK || rep.Entries != 2 {
		t.Errorf("audit.Verify = %+v, %v", rep, err)
	}
}
