package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/vulndb"
)

// bigImage stores in st an image of pkgs npm packages, and makes an
// advisory database of pkgs records each affecting 5 of them (every
// version): 5*pkgs findings. It returns the digest and the database.
func bigImage(t *testing.T, st *store.Store, pkgs int) (string, *vulndb.DB) {
	t.Helper()
	ctx := t.Context()
	digest := "sha256:" + strings.Repeat("b", 64)
	inv := &sbom.SBOM{Source: sbom.Source{Name: "reg.example/big:1", Digest: digest}}
	for i := range pkgs {
		name := fmt.Sprintf("pkg-%05d", i)
		inv.Packages = append(inv.Packages, sbom.Package{Name: name, Version: "1.0.0", Type: sbom.TypeNPM, PURL: "pkg:npm/" + name + "@1.0.0"})
	}
	if err := st.PutImage(ctx, store.Image{Digest: digest, Repository: "reg.example/big"}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutInventory(ctx, digest, inv, nil); err != nil {
		t.Fatal(err)
	}
	feed := t.TempDir()
	for r := range pkgs {
		var affected []map[string]any
		for k := range 5 {
			affected = append(affected, map[string]any{
				"package": map[string]string{"ecosystem": "npm", "name": fmt.Sprintf("pkg-%05d", (r+k*7919)%pkgs)},
				"ranges":  []map[string]any{{"type": "SEMVER", "events": []map[string]string{{"introduced": "0"}}}},
			})
		}
		rec, _ := json.Marshal(map[string]any{
			"schema_version": "1.6.0", "id": fmt.Sprintf("GHSA-load-%05d", r), "modified": "2026-01-01T00:00:00Z",
			"summary": "a load-test advisory", "affected": affected,
			"database_specific": map[string]string{"severity": "HIGH"},
		})
		if err := os.WriteFile(filepath.Join(feed, fmt.Sprintf("r%05d.json", r)), rec, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	adb, err := vulndb.Open(filepath.Join(t.TempDir(), "osv.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { adb.Close() })
	if _, err := adb.Import(ctx, vulndb.Source{Name: "npm", Location: feed}); err != nil {
		t.Fatal(err)
	}
	return digest, adb
}

// A viewer token flooding the findings of a large image (the issue's
// attack: 50 requests/s and more) does not take the server down: the
// flood is rate limited (429 with Retry-After), the findings are matched
// once per advisory-database version however many ask, pages are
// bounded, and another token's requests to other routes keep answering
// quickly. Loopback only; bounded in time (4 s of flood).
func TestServerFindingsFloodOtherRoutesAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	digest, adb := bigImage(t, st, 2000)
	var logged bytes.Buffer
	var logMu sync.Mutex
	h := New(st, NewAuditor(st, ""), &Metrics{Images: CountImages(st.DB())},
		slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logged}, &slog.HandlerOptions{Level: slog.LevelInfo})))
	var matches atomic.Int64
	h.UseAdvisorySource(adb, func(context.Context) (AdvisoryStatus, error) {
		return AdvisoryStatus{Data: policy.AdvisoryData{Records: 2000}, Version: "v1"}, nil
	})
	h.memo.onFill = func() { matches.Add(1) }
	srv := httptest.NewServer(h) // 127.0.0.1
	defer srv.Close()
	_, flooder, _ := st.CreateToken(t.Context(), "flood", store.RoleViewer)
	_, other, _ := st.CreateToken(t.Context(), "dash", store.RoleViewer)
	get := func(ctx context.Context, token, path string) (int, int, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		return resp.StatusCode, b.Len(), nil
	}

	// One page of the full report: bounded, with the total and a cursor.
	var page FindingsPage
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/images/"+digest+"/findings?limit=1000", nil)
	req.Header.Set("Authorization", "Bearer "+other)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if page.Total != 10000 || len(page.Findings) != 1000 || page.Next == "" {
		t.Fatalf("first page: total %d, %d findings, next %q; want 10000, 1000 and a cursor", page.Total, len(page.Findings), page.Next)
	}

	const flood = 4 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), flood)
	defer cancel()
	var codes sync.Map // code -> *atomic.Int64
	var wg sync.WaitGroup
	var floodBytes atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				code, n, err := get(ctx, flooder, "/api/v1/images/"+digest+"/findings")
				if err != nil {
					continue
				}
				c, _ := codes.LoadOrStore(code, new(atomic.Int64))
				c.(*atomic.Int64).Add(1)
				floodBytes.Add(int64(n))
			}
		}()
	}
	var lat []time.Duration
	paths := []string{"/api/v1/images", "/api/v1/images/" + digest, "/healthz"}
	for i := 0; ctx.Err() == nil; i++ {
		start := time.Now()
		code, _, err := get(context.Background(), other, paths[i%len(paths)])
		lat = append(lat, time.Since(start))
		if err != nil || code != http.StatusOK {
			t.Errorf("%s during the flood: %d %v", paths[i%len(paths)], code, err)
		}
		time.Sleep(60 * time.Millisecond) // 16 requests/s: within the token's own limit
	}
	wg.Wait()
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	count := func(code int) int64 {
		if c, ok := codes.Load(code); ok {
			return c.(*atomic.Int64).Load()
		}
		return 0
	}
	t.Logf("flood: %d x 200 (%.1f MB), %d x 429 in %s; findings matched %d times; other routes: %d requests, p50 %s, p99 %s, max %s",
		count(200), float64(floodBytes.Load())/1e6, count(429), flood, matches.Load(), len(lat), p50, p99, lat[len(lat)-1])
	if count(http.StatusTooManyRequests) == 0 {
		t.Error("the flood was not rate limited")
	}
	if matches.Load() != 1 {
		t.Errorf("findings matched %d times, want once per database version", matches.Load())
	}
	// Generous for a shared 2-core CI machine; the figure is logged
	// (docs/server.md has the measured one).
	if p99 > 2*time.Second {
		t.Errorf("p99 of other routes during the flood: %s, want under 2 s", p99)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if strings.Contains(logged.String(), "level=ERROR") {
		t.Errorf("errors logged during the flood (cancellations are not errors):\n%s", logged.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// A client that goes away is not a server failure: the request is
// logged as canceled and counted as 499, never as a 500 or an error.
func TestServerCanceledRequestIs499(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	digest, adb := bigImage(t, st, 50)
	var logged bytes.Buffer
	metrics := &Metrics{}
	h := New(st, NewAuditor(st, ""), metrics, slog.New(slog.NewTextHandler(&logged, nil)))
	block := make(chan struct{})
	h.UseAdvisorySource(adb, func(ctx context.Context) (AdvisoryStatus, error) {
		<-block // the client leaves while the server works
		return AdvisoryStatus{Version: "v1"}, ctx.Err()
	})
	_, viewer, _ := st.CreateToken(t.Context(), "v", store.RoleViewer)
	ctx, cancel := context.WithCancel(t.Context())
	req := httptest.NewRequestWithContext(ctx, "GET", "/api/v1/images/"+digest+"/findings", nil)
	req.Header.Set("Authorization", "Bearer "+viewer)
	go func() { cancel(); close(block) }()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != StatusClientClosedRequest {
		t.Errorf("canceled request: %d, want 499", rec.Code)
	}
	var b strings.Builder
	metrics.write(t.Context(), &b)
	if !strings.Contains(b.String(), `code="499"`) || strings.Contains(b.String(), `code="500"`) {
		t.Errorf("metrics:\n%s", b.String())
	}
	if strings.Contains(logged.String(), "level=ERROR") || !strings.Contains(logged.String(), "canceled by the client") {
		t.Errorf("log:\n%s", logged.String())
	}
}
