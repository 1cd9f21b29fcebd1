package store

import (
	"context"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/pgtest"
)

// storeFactory opens a fresh, empty store with a fake clock.
type storeFactory func(testing.TB) (*Store, *clock)

// eachBackend runs test against SQLite and against PostgreSQL (a fresh
// database on the server pgtest starts; skipped when PostgreSQL is not
// installed, unless BULWARK_REQUIRE_POSTGRES=1).
func eachBackend(t *testing.T, test func(*testing.T, storeFactory)) {
	t.Run("sqlite", func(t *testing.T) { test(t, newStore) })
	t.Run("postgres", func(t *testing.T) { test(t, newPostgresStore) })
}

// newPostgresStore opens a store on a fresh PostgreSQL database.
func newPostgresStore(t testing.TB) (*Store, *clock) {
	t.Helper()
	s, err := OpenPostgres(context.Background(), pgtest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c := newClock()
	s.Now = c.Now
	return s, c
}
