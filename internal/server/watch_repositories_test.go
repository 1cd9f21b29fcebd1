package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// A registration's repositories are what the watcher polls: names watch
// only themselves (an image pushed to another repository of the same
// registry is neither scanned nor certified), a glob the catalog's
// matching names, and no list the whole catalog.
func TestWatchOnlyRegisteredRepositories(t *testing.T) {
	ctx := t.Context()
	reg := registrytest.New(t)
	for i, repo := range []string{"demo/app", "demo/unchecked", "shop/web", "shop/api", "shop/deep/x"} {
		img, _ := variantImage(t, repo)
		reg.Push(t, repo+":"+string(rune('a'+i)), img)
	}
	for _, tc := range []struct {
		name       string
		configured []string
		want       []string
	}{
		{"names", []string{"demo/app"}, []string{"demo/app"}},
		{"glob", []string{"shop/*"}, []string{"shop/api", "shop/web"}},
		{"glob and name", []string{"shop/**", "demo/app"}, []string{"demo/app", "shop/api", "shop/deep/x", "shop/web"}},
		{"none: the catalog", nil, []string{"demo/app", "demo/unchecked", "shop/api", "shop/deep/x", "shop/web"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := store.Open(ctx, filepath.Join(t.TempDir(), "bulwark.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			id, err := st.PutRegistry(ctx, store.Registry{Name: "local", URL: "http://" + reg.Host})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tc.configured {
				if err := st.AddRepository(ctx, id, r); err != nil {
					t.Fatal(err)
				}
			}
			w := &watcher{store: st, log: slog.New(slog.DiscardHandler), interval: time.Hour}
			if err := w.poll(ctx); err != nil {
				t.Fatal(err)
			}
			jobs, err := st.ListJobs(ctx, api.JobScan, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			var scanned []string
			for _, j := range jobs {
				var p api.ScanPayload
				if err := json.Unmarshal(j.Payload, &p); err != nil {
					t.Fatal(err)
				}
				repo, _, _ := strings.Cut(strings.TrimPrefix(p.Image, reg.Host+"/"), "@")
				scanned = append(scanned, repo)
			}
			slices.Sort(scanned)
			if !slices.Equal(scanned, tc.want) {
				t.Errorf("registered %q: scans queued for %q, want %q", tc.configured, scanned, tc.want)
			}
		})
	}
}

func TestWatchedRepositories(t *testing.T) {
	for _, tc := range []struct {
		configured, catalog, want []string
	}{
		{nil, []string{"b", "a", "a"}, []string{"a", "b"}},
		{nil, nil, nil},
		{[]string{"demo/app"}, nil, []string{"demo/app"}},                           // no catalog: the names still polled
		{[]string{"demo/app", "x/*"}, nil, []string{"demo/app"}},                    // a glob without a catalog matches nothing
		{[]string{"x/[ab]"}, []string{"x/a", "x/c", "x/b"}, []string{"x/a", "x/b"}}, // character classes
		{[]string{"demo/app"}, []string{"demo/app", "demo/other"}, []string{"demo/app"}},
	} {
		if got := watchedRepositories(tc.configured, tc.catalog); !slices.Equal(got, tc.want) {
			t.Errorf("watchedRepositories(%q, %q) = %q, want %q", tc.configured, tc.catalog, got, tc.want)
		}
	}
}

// A registration may name repository globs; a malformed one is refused.
func TestRegisterRepositoryGlobs(t *testing.T) {
	dir := t.TempDir()
	admin := bootstrap(t, dir)
	c, stop := startServerWith(t, dir, func(cfg *Config) { cfg.WatchInterval = time.Hour })
	defer stop()
	for _, tc := range []struct {
		repos []string
		want  int
	}{
		{[]string{"shop/*", "team/**", "x/[ab]", "demo/app"}, http.StatusCreated},
		{[]string{"shop/[a"}, http.StatusBadRequest},
		{[]string{"Shop/*"}, http.StatusBadRequest},
		{[]string{"shop//*"}, http.StatusBadRequest},
		{[]string{"shop/*:tag"}, http.StatusBadRequest},
	} {
		body := map[string]any{"name": "r", "url": "https://registry.example.com", "repositories": tc.repos}
		if code, b := c.do("POST", "/api/v1/registries", admin.Token, body); code != tc.want {
			t.Errorf("registering %q: %d, want %d: %s", tc.repos, code, tc.want, b)
		}
	}
}
