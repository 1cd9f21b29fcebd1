package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// The watcher skips the repositories of an end-of-life application: no
// scan queued, no tag recorded. Back to active, the next poll takes them.
func TestServerWatchSkipsEndOfLife(t *testing.T) {
	ctx := t.Context()
	reg := registrytest.New(t)
	legacyImg, legacyDigest := variantImage(t, "legacy")
	shopImg, shopDigest := variantImage(t, "shop")
	reg.Push(t, "legacy/app:1", legacyImg)
	reg.Push(t, "shop/api:1", shopImg)

	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id, err := st.PutRegistry(ctx, store.Registry{Name: "local", URL: "http://" + reg.Host})
	if err != nil {
		t.Fatal(err)
	}
	for _, repo := range []string{"legacy/app", "shop/api"} {
		if err := st.AddRepository(ctx, id, repo); err != nil {
			t.Fatal(err)
		}
	}
	legacy := store.Application{Name: "legacy", Lifecycle: store.LifecycleEndOfLife, Repositories: []string{"legacy/*"}}
	if _, err := st.PutApplication(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	w := &watcher{store: st, log: slog.New(slog.DiscardHandler), interval: time.Hour}
	queued := func(repo, digest string) bool {
		t.Helper()
		payload, _ := json.Marshal(api.ScanPayload{Image: reg.Host + "/" + repo + "@" + digest})
		_, ok, err := st.PendingJob(ctx, api.JobScan, payload)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	if err := w.poll(ctx); err != nil {
		t.Fatal(err)
	}
	if !queued("shop/api", shopDigest) {
		t.Errorf("the active repository's digest was not queued")
	}
	if queued("legacy/app", legacyDigest) {
		t.Errorf("the end-of-life repository's digest was queued")
	}
	if tags, err := st.Tags(ctx, reg.Host+"/legacy/app"); err != nil || len(tags) != 0 {
		t.Errorf("end-of-life tags recorded: %v, %v", tags, err)
	}

	legacy.Lifecycle = store.LifecycleDeprecated
	if _, err := st.PutApplication(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	if err := w.poll(ctx); err != nil {
		t.Fatal(err)
	}
	if !queued("legacy/app", legacyDigest) {
		t.Errorf("the deprecated (no longer end-of-life) repository's digest was not queued")
	}
}

// Run serves the web console under /ui/ beside the API: a browser is sent
// to the login form, and logs in with an API token.
func TestServerConsoleMounted(t *testing.T) {
	dir := t.TempDir()
	admin := bootstrap(t, dir)
	c, _ := startServer(t, dir)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar}
	get := func(resp *http.Response, err error) (string, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", resp.Request.URL, resp.StatusCode, b)
		}
		return resp.Request.URL.Path, string(b)
	}
	path, body := get(browser.Get(c.base + "/ui/"))
	if path != "/ui/login" || !strings.Contains(body, `name="token"`) {
		t.Fatalf("GET /ui/ ended at %s: %s", path, body)
	}
	path, body = get(browser.PostForm(c.base+"/ui/login", url.Values{"token": {admin.Token}}))
	if path != "/ui/repositories" || !strings.Contains(body, "<h1>Repositories</h1>") {
		t.Fatalf("login ended at %s: %s", path, body)
	}
	if code, _ := c.do("GET", "/healthz", "", nil); code != 200 {
		t.Errorf("/healthz beside the console: %d", code)
	}
	// The console's cookie holds a session id, which the API refuses.
	u, _ := url.Parse(c.base + "/ui/")
	cookies := jar.Cookies(u)
	if len(cookies) != 1 || cookies[0].Value == admin.Token {
		t.Fatalf("console cookies = %v, want one session id that is not the token", cookies)
	}
	if code, _ := c.do("GET", "/api/v1/revocations", cookies[0].Value, nil); code != http.StatusUnauthorized {
		t.Errorf("API with the console session id as bearer: %d, want 401", code)
	}
}

// A scan asked for by hand (or by a push notification) of an end-of-life
// application's repository completes without scanning.
func TestServerScanSkipsEndOfLife(t *testing.T) {
	reg := registrytest.New(t)
	img, d := variantImage(t, "legacy")
	reg.Push(t, "legacy/app:1", img)
	dir := t.TempDir()
	admin := bootstrap(t, dir)
	c, _ := startServerWith(t, dir, func(cfg *Config) { cfg.WatchInterval = time.Hour })
	_, operator := roleTokens(c, admin)
	c.json("POST", "/api/v1/applications", admin.Token, map[string]any{"name": "legacy", "lifecycle": store.LifecycleEndOfLife,
		"repositories": []string{"legacy/*"}}, http.StatusCreated, nil)
	waitScan(t, c, operator.Token, reg.Ref("legacy/app:1"))
	if code, _ := c.do("GET", "/api/v1/images/"+d, admin.Token, nil); code != http.StatusNotFound {
		t.Errorf("the end-of-life image was scanned: GET image %d", code)
	}

	// Mapped by label alone, in a repository no pattern names.
	labeled, err := mutate.Config(img, v1.Config{Labels: map[string]string{"team": "mainframe"}})
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "misc/tool:1", labeled)
	ld, _ := labeled.Digest()
	c.json("POST", "/api/v1/applications", admin.Token, map[string]any{"name": "mainframe", "lifecycle": store.LifecycleEndOfLife,
		"labels": map[string]string{"team": "mainframe"}}, http.StatusCreated, nil)
	waitScan(t, c, operator.Token, reg.Ref("misc/tool:1"))
	if code, _ := c.do("GET", "/api/v1/images/"+ld.String(), admin.Token, nil); code != http.StatusNotFound {
		t.Errorf("the image of an end-of-life application (by label) was scanned: GET image %d", code)
	}
	// The same image without the label is scanned.
	reg.Push(t, "misc/tool:2", img)
	waitScan(t, c, operator.Token, reg.Ref("misc/tool:2"))
	if code, _ := c.do("GET", "/api/v1/images/"+d, admin.Token, nil); code != http.StatusOK {
		t.Errorf("an active image was not scanned: GET image %d", code)
	}
}
