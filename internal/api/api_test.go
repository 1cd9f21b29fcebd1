package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/store"
)

func newTestAPI(t testing.TB) (*Handler, Store) {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(st, NewAuditor(st, ""), &Metrics{Images: CountImages(st.DB())}, slog.New(slog.DiscardHandler)), st
}

// Every route is in the OpenAPI document with its method, and the document
// names no route that does not exist.
func TestServerOpenAPIMatchesRoutes(t *testing.T) {
	h, _ := newTestAPI(t)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("openapi.json: %d", rec.Code)
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi = %q", doc.OpenAPI)
	}
	described := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			described[strings.ToUpper(method)+" "+path] = true
		}
	}
	for _, rt := range h.routes() {
		if !described[documented(rt.pattern)] {
			t.Errorf("route %s is not in openapi.json", rt.pattern)
		}
		delete(described, documented(rt.pattern))
	}
	for op := range described {
		t.Errorf("openapi.json describes %s, which is not a route", op)
	}
	// The roles in the summaries match the routes'.
	for _, rt := range h.routes() {
		method, path, _ := strings.Cut(documented(rt.pattern), " ")
		op, _ := doc.Paths[path][strings.ToLower(method)].(map[string]any)
		summary, _ := op["summary"].(string)
		if rt.role != "" && !strings.Contains(summary, "role "+rt.role) {
			t.Errorf("%s: summary %q does not name role %s", rt.pattern, summary, rt.role)
		}
	}
}

// documented is the OpenAPI path of a mux pattern: a multi-segment
// wildcard must end a mux pattern, so the repository routes are served by
// one pattern whose handler cuts the suffix.
func documented(pattern string) string {
	if pattern == "GET /api/v1/repositories/{path...}" {
		return "GET /api/v1/repositories/{repository}/rollback"
	}
	return pattern
}

// The adapter sends the client message and status, never the cause.
func TestServerErrorAdapter(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	for _, tc := range []struct {
		err      error
		wantCode int
		wantMsg  string
	}{
		{errors.New("database is locked at /secret/path"), 500, "internal error"},
		{errorf(404, errors.New("sql: no rows"), "image %s not found", "x"), 404, "image x not found"},
		{errors.Join(errors.New("ctx"), errorf(403, nil, "forbidden")), 403, "forbidden"},
	} {
		logged.Reset()
		rec := httptest.NewRecorder()
		render(log, func(http.ResponseWriter, *http.Request) error { return tc.err }).
			ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
		var body map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if rec.Code != tc.wantCode || body["error"] != tc.wantMsg || len(body) != 1 {
			t.Errorf("%v: %d %v, want %d %q", tc.err, rec.Code, body, tc.wantCode, tc.wantMsg)
		}
		if strings.Contains(rec.Body.String(), "secret") || strings.Contains(rec.Body.String(), "sql:") {
			t.Errorf("cause leaked to the client: %s", rec.Body)
		}
		if !strings.Contains(logged.String(), "cause=") {
			t.Errorf("cause not logged: %s", logged.String())
		}
	}
}

// Roles are ordered: each route accepts its role and above, refuses below.
func TestServerRoles(t *testing.T) {
	h, st := newTestAPI(t)
	tokens := map[string]string{}
	for _, role := range []string{store.RoleViewer, store.RoleOperator, store.RoleAdmin} {
		_, tok, err := st.CreateToken(t.Context(), role, role)
		if err != nil {
			t.Fatal(err)
		}
		tokens[role] = tok
	}
	call := func(method, path, token, body string) int {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, tc := range []struct {
		method, path, body string
		want               map[string]int
	}{
		{"GET", "/api/v1/images", "", map[string]int{"": 401, "viewer": 200, "operator": 200, "admin": 200}},
		{"POST", "/api/v1/scans", `{"image":"example.com/a:1"}`, map[string]int{"": 401, "viewer": 403, "operator": 202, "admin": 202}},
		{"POST", "/api/v1/tokens", `{"name":"n","role":"viewer"}`, map[string]int{"": 401, "viewer": 403, "operator": 403, "admin": 201}},
		{"GET", "/healthz", "", map[string]int{"": 200}},
		{"GET", "/metrics", "", map[string]int{"": 200}},
	} {
		for role, want := range tc.want {
			if got := call(tc.method, tc.path, tokens[role], tc.body); got != want {
				t.Errorf("%s %s as %q: %d, want %d", tc.method, tc.path, role, got, want)
			}
		}
	}
	// Two scans and one token were accepted: three audit entries.
	rep, err := audit.Verify(t.Context(), st.DB())
	if err != nil || !rep.OK || rep.Entries != 3 {
		t.Errorf("audit: %+v %v", rep, err)
	}
}

// Every mutating route, as h.routes() lists them (so a new route is covered
// the day it is added), refuses a call without a token or with an invalid
// one (401) and one from a viewer (403), and none of them changes anything:
// the audit log stays empty.
func TestServerEveryMutatingRouteNeedsAToken(t *testing.T) {
	h, st := newTestAPI(t)
	_, viewer, err := st.CreateToken(t.Context(), "dash", store.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	fill := strings.NewReplacer("{digest}", "sha256:"+strings.Repeat("a", 64), "{name}", "x", "{id}", "1", "{path...}", "r/app/rollback")
	mutating := 0
	for _, rt := range h.routes() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		if method == "GET" || method == "HEAD" {
			continue
		}
		mutating++
		if rt.role == "" {
			t.Errorf("%s needs no token", rt.pattern)
			continue
		}
		for token, want := range map[string]int{"": http.StatusUnauthorized, "bwk_not-a-token": http.StatusUnauthorized, viewer: http.StatusForbidden} {
			req := httptest.NewRequest(method, fill.Replace(path), strings.NewReader(`{}`))
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != want {
				t.Errorf("%s with token %.12q: %d, want %d", rt.pattern, token, rec.Code, want)
			}
		}
	}
	if mutating < 10 {
		t.Errorf("only %d mutating routes found", mutating)
	}
	rep, err := audit.Verify(t.Context(), st.DB())
	if err != nil || rep.Entries != 0 {
		t.Errorf("refused calls wrote to the audit log: %+v %v", rep, err)
	}
}
