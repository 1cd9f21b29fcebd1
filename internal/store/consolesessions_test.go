package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Console sessions on both backends: kept under their key with the times
// given, touched, ended; at most perToken per token and max in all, the
// oldest going first, a token's own before anyone else's.
func TestConsoleSessions(t *testing.T) { eachBackend(t, testConsoleSessions) }

func testConsoleSessions(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, _ := newStore(t)
	t0 := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	if err := s.CreateConsoleSession(ctx, "k1", 7, t0, 64, 100); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchConsoleSession(ctx, "k1", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, err := s.ConsoleSession(ctx, "k1")
	if err != nil || got.TokenID != 7 || !got.Created.Equal(t0) || !got.LastSeen.Equal(t0.Add(time.Minute)) {
		t.Fatalf("session k1: %+v, %v", got, err)
	}
	if err := s.EndConsoleSession(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConsoleSession(ctx, "k1"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("ended session: %v, want ErrNoSession", err)
	}

	// Token 1 logs in 5 times with room for 3 of its own and 4 in all;
	// token 2's one session, older than all but one, stays.
	add := func(key string, token int64, at int) {
		t.Helper()
		if err := s.CreateConsoleSession(ctx, key, token, t0.Add(time.Duration(at)*time.Second), 3, 4); err != nil {
			t.Fatal(err)
		}
	}
	add("a0", 1, 0)
	add("b", 2, 1)
	for i := 1; i < 5; i++ {
		add(fmt.Sprintf("a%d", i), 1, 1+i)
	}
	for key, want := range map[string]bool{"a0": false, "a1": false, "b": true, "a2": true, "a3": true, "a4": true} {
		if _, err := s.ConsoleSession(ctx, key); (err == nil) != want {
			t.Errorf("session %s kept: %v, want %v", key, err == nil, want)
		}
	}
	// A fifth token's login with room for 4 in all evicts the oldest: b.
	add("c", 3, 10)
	if _, err := s.ConsoleSession(ctx, "b"); !errors.Is(err, ErrNoSession) {
		t.Errorf("the oldest session past the bound: %v, want evicted", err)
	}
	if n, err := s.ConsoleSessions(ctx); err != nil || n != 4 {
		t.Errorf("sessions kept: %d, %v; want 4", n, err)
	}
}
