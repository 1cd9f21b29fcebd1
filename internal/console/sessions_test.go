package console

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// clock is a settable time for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// status is the code of GET path with the cookie ck.
func status(h http.Handler, path string, ck *http.Cookie) int {
	r := httptest.NewRequest("GET", path, nil)
	r.AddCookie(ck)
	return serve(h, r).Code
}

// A session ends after an hour unused, and after eight hours however
// busy; the expired cookie is sent to the login form.
func TestConsoleSessionExpiry(t *testing.T) {
	st, token := seed(t)
	clk := &clock{t: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
	h := New(st, Options{Logger: slog.New(slog.DiscardHandler), Now: clk.now})

	idle := loggedIn(t, h, token)
	clk.add(59 * time.Minute)
	if code := status(h, "/ui/hygiene", idle); code != 200 {
		t.Fatalf("after 59 minutes idle: %d", code)
	}
	clk.add(60 * time.Minute)
	if code := status(h, "/ui/hygiene", idle); code != http.StatusSeeOther {
		t.Errorf("after 60 minutes idle: %d, want 303 to the login form", code)
	}

	busy := loggedIn(t, h, token)
	for range 9 { // 7 h 30 min of use, a page every 50 minutes
		clk.add(50 * time.Minute)
		if code := status(h, "/ui/hygiene", busy); code != 200 {
			t.Fatalf("busy session at %s: %d", clk.now().Format(time.TimeOnly), code)
		}
	}
	clk.add(30 * time.Minute)
	if code := status(h, "/ui/hygiene", busy); code != http.StatusSeeOther {
		t.Errorf("busy session after 8 hours: %d, want 303 to the login form", code)
	}
}

// The session id in the cookie is no API credential: the API answers
// 401 to it as a bearer token, and 200 to the token.
func TestConsoleSessionIsNotAnAPIToken(t *testing.T) {
	st, token := seed(t)
	h := Mount(api.New(st, api.NewAuditor(st, ""), nil, slog.New(slog.DiscardHandler)), st,
		Options{Logger: slog.New(slog.DiscardHandler)})
	ck := loggedIn(t, h, token)
	if code := status(h, "/ui/revocations", ck); code != 200 {
		t.Fatalf("console with the session: %d", code)
	}
	for bearer, want := range map[string]int{ck.Value: http.StatusUnauthorized, token: http.StatusOK} {
		r := httptest.NewRequest("GET", "/api/v1/revocations", nil)
		r.Header.Set("Authorization", "Bearer "+bearer)
		if code := serve(h, r).Code; code != want {
			t.Errorf("API with bearer %q: %d, want %d", bearer, code, want)
		}
	}
	// Nor is the cookie itself read by the API.
	r := httptest.NewRequest("GET", "/api/v1/revocations", nil)
	r.AddCookie(ck)
	if code := serve(h, r).Code; code != http.StatusUnauthorized {
		t.Errorf("API with the console cookie: %d, want 401", code)
	}
}

// The table is bounded: past MaxSessions the oldest session goes, and one
// token logging in over and over evicts only its own sessions.
func TestConsoleSessionsBounded(t *testing.T) {
	st, token := seed(t)
	_, other, err := st.CreateToken(t.Context(), "other", store.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	h := New(st, Options{Logger: slog.New(slog.DiscardHandler), MaxSessions: 3})
	first := loggedIn(t, h, token)
	rest := []*http.Cookie{loggedIn(t, h, other), loggedIn(t, h, token), loggedIn(t, h, other)}
	if code := status(h, "/ui/hygiene", first); code != http.StatusSeeOther {
		t.Errorf("the oldest of 4 sessions with room for 3: %d, want 303", code)
	}
	for i, ck := range rest {
		if code := status(h, "/ui/hygiene", ck); code != 200 {
			t.Errorf("session %d of the newest 3: %d", i+2, code)
		}
	}

	h = New(st, Options{Logger: slog.New(slog.DiscardHandler)})
	victim := loggedIn(t, h, other)
	flood := loggedIn(t, h, token)
	for range maxSessionsPerToken {
		loggedIn(t, h, token)
	}
	if code := status(h, "/ui/hygiene", victim); code != 200 {
		t.Errorf("another token's session after %d logins: %d", maxSessionsPerToken+1, code)
	}
	if code := status(h, "/ui/hygiene", flood); code != http.StatusSeeOther {
		t.Errorf("the flooding token's oldest session: %d, want 303", code)
	}

	// The table stays bounded whatever the logins.
	table := &sessions{st: st, max: 100, idle: time.Hour, absolute: 8 * time.Hour, now: time.Now}
	for i := range 1000 {
		if _, err := table.create(t.Context(), int64(i%7)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := st.ConsoleSessions(t.Context()); err != nil || n != 100 {
		t.Errorf("sessions kept after 1000 logins with room for 100: %d, %v", n, err)
	}
}

// Logging in again from a browser with a session replaces that session.
func TestConsoleLoginReplacesSession(t *testing.T) {
	st, token := seed(t)
	h := newConsole(t, st)
	old := loggedIn(t, h, token)
	r := loginRequest("/ui/login", token)
	r.AddCookie(old)
	rec := serve(h, r)
	if c := rec.Result().Cookies(); rec.Code != http.StatusSeeOther || len(c) != 1 || c[0].Value == old.Value {
		t.Fatalf("second login: %d %v", rec.Code, c)
	} else if code := status(h, "/ui/hygiene", c[0]); code != 200 {
		t.Errorf("the new session: %d", code)
	}
	if code := status(h, "/ui/hygiene", old); code != http.StatusSeeOther {
		t.Errorf("the replaced session: %d, want 303", code)
	}
}

// Sessions live in the store, not in one process: a session made through
// one console (one replica) is a session at another over the same
// database, and a logout at the second ends it at the first (replicas on
// one PostgreSQL behind a load balancer without sticky routing).
func TestConsoleSessionSharedByReplicas(t *testing.T) {
	st, token := seed(t)
	one := New(st, Options{Logger: slog.New(slog.DiscardHandler)})
	two := New(st, Options{Logger: slog.New(slog.DiscardHandler)})
	ck := loggedIn(t, one, token)
	if code := status(two, "/ui/hygiene", ck); code != 200 {
		t.Fatalf("the session made at one replica, at the other: %d", code)
	}
	r := httptest.NewRequest("POST", "/ui/logout", nil)
	r.AddCookie(ck)
	serve(two, r)
	if code := status(one, "/ui/hygiene", ck); code != http.StatusSeeOther {
		t.Errorf("logged out at one replica, at the other: %d, want 303 to the login form", code)
	}
}
