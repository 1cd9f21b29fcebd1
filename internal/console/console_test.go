package console

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Seeded names the console tests look for.
const (
	shopRepo     = "registry.example.com/shop/api"
	legacyRepo   = "registry.example.com/legacy/app"
	revokedHex   = "7e1f2a3b4c5d6e7f80911a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7"
	targetHex    = "a0b1c2d3e4f5061728394a5b6c7d8e9fa0b1c2d3e4f5061728394a5b6c7d8e9f"
	oldHex       = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	eolHex       = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
	shopContact  = "payments-oncall@example.com"
	revokeReason = "CVE-2026-31337 (CRITICAL) in openssl 3.0.11"
	hostileRepo  = `registry.example.com/<script>alert(1)</script>`
)

// seed fills a SQLite store with a registry, two applications (one end of
// life), images with findings, tags and certifications (one revoked, with a
// certified rollback target), and returns it with a viewer token.
func seed(t *testing.T) (*store.Store, string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	id, err := st.PutRegistry(ctx, store.Registry{Name: "corp", URL: "https://registry.example.com", Credentials: []byte("SEALED-SECRET")})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddRepository(ctx, id, "shop/api"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []store.Application{
		{Name: "shop", Team: "payments", Contact: shopContact, Repositories: []string{"shop/*"}},
		{Name: "legacy-portal", Team: "platform", Lifecycle: store.LifecycleEndOfLife, Repositories: []string{"legacy/**"}},
	} {
		if _, err := st.PutApplication(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	day := 24 * time.Hour
	for _, img := range []store.Image{
		{Digest: "sha256:" + revokedHex, Repository: shopRepo, Created: now.Add(-3 * day), LastScanned: now,
			Findings: map[string]int{"CRITICAL": 2, "HIGH": 5, "LOW": 1}},
		{Digest: "sha256:" + targetHex, Repository: shopRepo, Created: now.Add(-40 * day), LastScanned: now,
			Findings: map[string]int{"MEDIUM": 4}},
		{Digest: "sha256:" + oldHex, Repository: shopRepo, Created: now.Add(-400 * day)},
		{Digest: "sha256:" + eolHex, Repository: legacyRepo, Created: now.Add(-30 * day)},
		{Digest: "sha256:" + strings.Repeat("5", 64), Repository: hostileRepo, Created: now},
	} {
		if err := st.PutImage(ctx, img); err != nil {
			t.Fatal(err)
		}
	}
	for _, tg := range [][3]string{
		{shopRepo, "latest", "sha256:" + revokedHex},
		{shopRepo, "1.4.2", "sha256:" + targetHex},
		{legacyRepo, "final", "sha256:" + eolHex},
	} {
		if err := st.SetTag(ctx, tg[0], tg[1], tg[2]); err != nil {
			t.Fatal(err)
		}
	}
	for digest, status := range map[string]string{"sha256:" + targetHex: store.Certified, "sha256:" + oldHex: store.Certified} {
		if err := st.SetCertification(ctx, digest, status, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetCertification(ctx, "sha256:"+revokedHex, store.Revoked, revokeReason); err != nil {
		t.Fatal(err)
	}
	_, token, err := st.CreateToken(ctx, "dash", store.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	return st, token
}

func newConsole(t *testing.T, st Store) http.Handler {
	return New(st, Options{Logger: slog.New(slog.DiscardHandler)})
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func loginRequest(target, token string) *http.Request {
	r := httptest.NewRequest("POST", target, strings.NewReader(url.Values{"token": {token}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// loggedIn logs in to h with token through the form and returns the
// session cookie.
func loggedIn(t *testing.T, h http.Handler, token string) *http.Cookie {
	t.Helper()
	rec := serve(h, loginRequest("/ui/login", token))
	cookies := rec.Result().Cookies()
	if rec.Code != http.StatusSeeOther || len(cookies) != 1 {
		t.Fatalf("login: %d %v", rec.Code, cookies)
	}
	return cookies[0]
}

func TestConsoleLogin(t *testing.T) {
	st, token := seed(t)
	h := newConsole(t, st)

	// Every page sends a browser without the cookie to the login form.
	for _, p := range []string{"/ui/", "/ui/repositories", "/ui/hygiene", "/ui/revocations", "/ui/applications", "/ui/registries"} {
		rec := serve(h, httptest.NewRequest("GET", p, nil))
		if p == "/ui/" {
			rec = serve(h, httptest.NewRequest("GET", rec.Header().Get("Location"), nil))
		}
		if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/login" {
			t.Errorf("GET %s without a cookie: %d to %q, want 303 to /ui/login", p, rec.Code, rec.Header().Get("Location"))
		}
		if strings.Contains(rec.Body.String(), shopRepo) {
			t.Errorf("GET %s without a cookie shows data", p)
		}
	}
	if rec := serve(h, httptest.NewRequest("GET", "/ui/login", nil)); rec.Code != 200 || !strings.Contains(rec.Body.String(), `name="token"`) {
		t.Errorf("login form: %d %s", rec.Code, rec.Body)
	}

	// A wrong token is refused, and no cookie is set.
	for _, bad := range []string{"", "bwk_wrong", token + "x"} {
		rec := serve(h, loginRequest("/ui/login", bad))
		if rec.Code != http.StatusUnauthorized || len(rec.Result().Cookies()) != 0 || !strings.Contains(rec.Body.String(), "not valid") {
			t.Errorf("login with %q: %d %v", bad, rec.Code, rec.Result().Cookies())
		}
	}
	// A cross-site form post is refused before the token is looked at.
	r := loginRequest("/ui/login", token)
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	if rec := serve(h, r); rec.Code != http.StatusForbidden || len(rec.Result().Cookies()) != 0 {
		t.Errorf("cross-site login: %d", rec.Code)
	}

	// The right token sets the cookie: a session id, not the token;
	// HttpOnly, SameSite=Strict, scoped to the console, Secure over TLS only.
	rec := serve(h, loginRequest("/ui/login", token))
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/repositories" {
		t.Fatalf("login: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies = %v", cookies)
	}
	ck := cookies[0]
	if ck.Value == token || strings.Contains(ck.Value, strings.TrimPrefix(token, store.TokenPrefix)) || len(ck.Value) != 43 {
		t.Errorf("cookie value %q is not a 256-bit session id apart from the token", ck.Value)
	}
	if ck.Name != CookieName || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode ||
		ck.Path != "/ui/" || ck.Secure || ck.MaxAge != 8*3600 {
		t.Errorf("cookie = %+v", ck)
	}
	tls := serve(h, loginRequest("https://bulwark.example/ui/login", token))
	if c := tls.Result().Cookies(); len(c) != 1 || !c[0].Secure {
		t.Errorf("cookie over TLS = %+v, want Secure", c)
	}

	get := func(path string, ck *http.Cookie) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		if ck != nil {
			r.AddCookie(ck)
		}
		return serve(h, r)
	}
	rec = get("/ui/repositories", ck)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), shopRepo) {
		t.Fatalf("repositories with the cookie: %d", rec.Code)
	}
	for name, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'",
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-store",
		"Content-Type":            "text/html; charset=utf-8",
	} {
		if got := rec.Header().Get(name); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// A forged cookie is not a session, nor is the API token itself.
	for _, forged := range []string{"bwk_forged", token} {
		if rec := get("/ui/repositories", &http.Cookie{Name: CookieName, Value: forged}); rec.Code != http.StatusSeeOther {
			t.Errorf("cookie %q: %d", forged, rec.Code)
		}
	}

	// Logging out clears the cookie and ends the session server-side: the
	// cookie replayed is sent to the login form.
	r = httptest.NewRequest("POST", "/ui/logout", nil)
	r.AddCookie(ck)
	rec = serve(h, r)
	if c := rec.Result().Cookies(); rec.Code != http.StatusSeeOther || len(c) != 1 || c[0].MaxAge >= 0 {
		t.Errorf("logout: %d %v", rec.Code, c)
	}
	if rec := get("/ui/repositories", ck); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/login" ||
		strings.Contains(rec.Body.String(), shopRepo) {
		t.Errorf("cookie replayed after logout: %d to %q", rec.Code, rec.Header().Get("Location"))
	}

	// Revoking the token ends a live session at the next request.
	ck = loggedIn(t, h, token)
	if rec := get("/ui/revocations", ck); rec.Code != 200 || !strings.Contains(rec.Body.String(), revokedHex) {
		t.Fatalf("revocations before the revocation: %d", rec.Code)
	}
	_, tokID, err := st.Authenticate(t.Context(), token)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeToken(t.Context(), tokID); err != nil {
		t.Fatal(err)
	}
	if rec := get("/ui/revocations", ck); rec.Code != http.StatusSeeOther || strings.Contains(rec.Body.String(), revokedHex) {
		t.Errorf("revoked token: %d", rec.Code)
	}
}

// The pages show the seeded data, escaped, and never a credential.
func TestConsolePages(t *testing.T) {
	st, token := seed(t)
	h := newConsole(t, st)
	ck := loggedIn(t, h, token)
	page := func(path string) string {
		t.Helper()
		r := httptest.NewRequest("GET", path, nil)
		r.AddCookie(ck)
		rec := serve(h, r)
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		body := rec.Body.String()
		if strings.Contains(body, "<script>") {
			t.Errorf("GET %s: an unescaped <script> from the data", path)
		}
		if strings.Contains(body, "SEALED-SECRET") {
			t.Errorf("GET %s shows registry credentials", path)
		}
		return body
	}
	for path, wants := range map[string][]string{
		"/ui/repositories": {shopRepo, legacyRepo, "sha256:7e1f2a3b4c5d", "latest", "1.4.2", "CRITICAL", "revoked", "certified",
			shopContact, "payments", "&lt;script&gt;alert(1)&lt;/script&gt;", "end-of-life"},
		"/ui/revocations":  {"sha256:" + revokedHex, "sha256:" + targetHex, "CVE-2026-31337 (CRITICAL) in openssl 3.0.11", shopContact},
		"/ui/applications": {"shop", "legacy-portal", shopContact, "end-of-life", "<code>legacy/**</code>", "sha256:eeeeeeeeeeee"},
		"/ui/hygiene":      {"sha256:0123456789ab", "sha256:eeeeeeeeeeee", "older than 180 days"},
		"/ui/registries":   {"corp", "https://registry.example.com", "shop/api"},
	} {
		body := page(path)
		for _, w := range wants {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s does not show %q", path, w)
			}
		}
	}
	// The CSS is served without a login.
	rec := serve(h, httptest.NewRequest("GET", "/ui/static/console.css", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/css") {
		t.Errorf("console.css: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}

// A failing store is a generic 500 page; the cause stays in the log.
func TestConsoleStoreFailure(t *testing.T) {
	st, token := seed(t)
	h := newConsole(t, st)
	ck := loggedIn(t, h, token)
	st.Close()
	r := httptest.NewRequest("GET", "/ui/repositories", nil)
	r.AddCookie(ck)
	rec := serve(h, r)
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 500 || strings.Contains(string(body), "sql") || !strings.Contains(string(body), "Something went wrong") {
		t.Errorf("closed store: %d %s", rec.Code, body)
	}
}

// Mount serves the console under /ui/ and the API everywhere else.
func TestConsoleMount(t *testing.T) {
	st, _ := seed(t)
	apiH := api.New(st, api.NewAuditor(st, ""), nil, slog.New(slog.DiscardHandler))
	h := Mount(apiH, st, Options{Logger: slog.New(slog.DiscardHandler)})
	if rec := serve(h, httptest.NewRequest("GET", "/healthz", nil)); rec.Code != 200 || !strings.Contains(rec.Body.String(), "ok") {
		t.Errorf("/healthz through Mount: %d", rec.Code)
	}
	if rec := serve(h, httptest.NewRequest("GET", "/api/v1/revocations", nil)); rec.Code != 401 {
		t.Errorf("/api/v1/revocations without a token through Mount: %d", rec.Code)
	}
	if rec := serve(h, httptest.NewRequest("GET", "/ui/login", nil)); rec.Code != 200 {
		t.Errorf("/ui/login through Mount: %d", rec.Code)
	}
	if rec := serve(h, httptest.NewRequest("GET", "/ui", nil)); rec.Code/100 != 3 || rec.Header().Get("Location") != "/ui/" {
		t.Errorf("/ui through Mount: %d to %q, want a redirect to /ui/", rec.Code, rec.Header().Get("Location"))
	}
}
