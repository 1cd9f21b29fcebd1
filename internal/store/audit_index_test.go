package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/pgtest"
)

// fillAudit inserts n audit entries about objects objects (raw rows: the
// chain is not what is measured), certification actions every other one.
func fillAudit(tb testing.TB, s *Store, n, objects int) {
	tb.Helper()
	ctx := context.Background()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for i := 1; i <= n; i++ {
			action := "certification.grant"
			if i%2 == 0 {
				action = "scan.request"
			}
			if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO audit_log (seq, time, actor, action, object, before, after, prev_hash, hash)
				VALUES (?, ?, 'system:scan', ?, ?, '', '{}', ?, ?)`),
				i, formatTime(time.Unix(int64(i), 0)), action, fmt.Sprintf("sha256:%064d", i%objects), []byte{0}, []byte{1}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// hasIndex reports whether the database has the index called name.
func hasIndex(t *testing.T, s *Store, name string) bool {
	t.Helper()
	q := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = ?`
	if s.d.name == "postgres" {
		q = `SELECT COUNT(*) FROM pg_indexes WHERE indexname = $1`
	}
	var n int
	if err := s.DB().QueryRow(q, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// auditIndexMigration is the number of the migration adding the
// (object, seq) index: the database is at it once the index is there.
func auditIndexMigration(t *testing.T) int {
	t.Helper()
	for i, m := range migrations {
		if strings.Contains(m, "audit_log_object") {
			return i + 1
		}
	}
	t.Fatal("no migration creates audit_log_object")
	return 0
}

// olderSchema runs fn with the migrations cut to the first n, as a
// bulwark of schema version n knew them.
func olderSchema(n int, fn func()) {
	all, v := migrations, SchemaVersion
	defer func() { migrations, SchemaVersion = all, v }()
	migrations, SchemaVersion = all[:n], n
	fn()
}

// The (object, seq) index migration applies to a database of the version
// before it that already holds audit entries, on both backends, and
// ObjectHistory answers as before.
func TestMigrationAuditObjectIndex(t *testing.T) {
	ctx := t.Context()
	v := auditIndexMigration(t)
	check := func(t *testing.T, open func() (*Store, error)) {
		var s *Store
		var err error
		olderSchema(v-1, func() { s, err = open() })
		if err != nil {
			t.Fatal(err)
		}
		if hasIndex(t, s, "audit_log_object") {
			t.Fatal("the older schema has the index")
		}
		fillAudit(t, s, 1000, 10)
		s.Close()
		if s, err = open(); err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if got, err := s.SchemaVersionOf(ctx); err != nil || got != SchemaVersion {
			t.Errorf("schema version %d (%v), want %d", got, err, SchemaVersion)
		}
		if !hasIndex(t, s, "audit_log_object") {
			t.Error("no audit_log_object index after migrating")
		}
		h, err := s.ObjectHistory(ctx, fmt.Sprintf("sha256:%064d", 3), "certification.")
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 100 || h[0].Seq != 3 || h[99].Seq != 993 {
			t.Errorf("history: %d entries; want 100 from seq 3 to 993", len(h))
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bulwark.db")
		check(t, func() (*Store, error) { return Open(ctx, path) })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.Start(t)
		check(t, func() (*Store, error) { return OpenPostgres(ctx, dsn) })
	})
}

// The history query reads the index, not the whole log (SQLite's plan).
func TestObjectHistoryUsesIndex(t *testing.T) {
	s, _ := newStore(t)
	var plan []string
	rows, err := s.DB().Query(`EXPLAIN QUERY PLAN SELECT seq FROM audit_log WHERE object = ? AND substr(action, 1, 14) = ?
		ORDER BY seq DESC LIMIT 500`, "sha256:x", "certification.")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if got := strings.Join(plan, "; "); !strings.Contains(got, "audit_log_object") {
		t.Errorf("plan %q does not use audit_log_object", got)
	}
}

// BenchmarkObjectHistory: one image's certification history among 50,000
// audit entries about 5,000 objects, with and without migration 7's index.
func BenchmarkObjectHistory(b *testing.B) {
	for _, indexed := range []bool{false, true} {
		b.Run(fmt.Sprintf("indexed=%v", indexed), func(b *testing.B) {
			s, _ := newStore(b)
			fillAudit(b, s, 50000, 5000)
			if !indexed {
				if _, err := s.DB().Exec(`DROP INDEX audit_log_object`); err != nil {
					b.Fatal(err)
				}
			}
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := s.ObjectHistory(ctx, fmt.Sprintf("sha256:%064d", i%5000), "certification."); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
