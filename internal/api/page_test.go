package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Lists are paged with ?limit and the opaque ?cursor of the previous
// page: every item once, in order, the last page without `next`; a limit
// out of range or a cursor this server did not give is a 400.
func TestServerPaging(t *testing.T) {
	h, s := newTestAPI(t)
	st := s.(*store.Store)
	ctx := t.Context()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		img := store.Image{Digest: fmt.Sprintf("sha256:%064d", i), Repository: "reg.example/app",
			Created: base.Add(time.Duration(i) * time.Hour), LastSeen: base.Add(time.Duration(i%2) * time.Hour)}
		if err := st.PutImage(ctx, img); err != nil {
			t.Fatal(err)
		}
	}
	digest, adb := bigImage(t, st, 50) // 250 findings
	h.UseAdvisorySource(adb, func(context.Context) (AdvisoryStatus, error) {
		return AdvisoryStatus{Data: policy.AdvisoryData{Records: 50}, Version: "v1"}, nil
	})
	_, viewer, _ := st.CreateToken(ctx, "v", store.RoleViewer)
	get := func(path string, out any) int {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+viewer)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if out != nil && rec.Code == http.StatusOK {
			if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
				t.Fatal(err)
			}
		}
		return rec.Code
	}
	for _, q := range []string{"", "repository=reg.example/app&"} {
		seen, pages, next := map[string]bool{}, 0, ""
		for {
			var page struct {
				Images []store.Image `json:"images"`
				Next   string        `json:"next"`
			}
			if code := get("/api/v1/images?"+q+"limit=2&cursor="+next, &page); code != http.StatusOK {
				t.Fatalf("images page %d: %d", pages, code)
			}
			pages++
			for _, img := range page.Images {
				if seen[img.Digest] {
					t.Errorf("%q: %s on two pages", q, img.Digest)
				}
				seen[img.Digest] = true
			}
			if next = page.Next; next == "" {
				break
			}
		}
		want := 6 // the big image too
		if q != "" {
			want = 5
		}
		if len(seen) != want || pages != (want+1)/2 {
			t.Errorf("%q: %d images in %d pages, want %d", q, len(seen), pages, want)
		}
	}
	var ids []string
	next, total := "", 0
	for range 10 {
		var page FindingsPage
		if code := get("/api/v1/images/"+digest+"/findings?limit=100&cursor="+next, &page); code != http.StatusOK {
			t.Fatalf("findings: %d", code)
		}
		total = page.Total
		for _, f := range page.Findings {
			ids = append(ids, f.ID+" "+f.Package.Name)
		}
		if next = page.Next; next == "" {
			break
		}
	}
	uniq := map[string]bool{}
	for _, id := range ids {
		uniq[id] = true
	}
	if total != 250 || len(ids) != 250 || len(uniq) != 250 {
		t.Errorf("findings pages: total %d, %d served, %d distinct; want 250", total, len(ids), len(uniq))
	}
	// The audit log: every entry once, oldest first.
	_, admin, _ := st.CreateToken(ctx, "a", store.RoleAdmin)
	for i := range 5 {
		req := httptest.NewRequest("POST", "/api/v1/tokens", strings.NewReader(fmt.Sprintf(`{"name":"t%d","role":"viewer"}`, i)))
		req.Header.Set("Authorization", "Bearer "+admin)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	var seqs []int64
	next = ""
	for range 10 {
		req := httptest.NewRequest("GET", "/api/v1/audit?limit=2&cursor="+next, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var page struct {
			Entries []store.AuditRecord `json:"entries"`
			Next    string              `json:"next"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("audit: %d %v", rec.Code, err)
		}
		for _, e := range page.Entries {
			seqs = append(seqs, e.Seq)
		}
		if next = page.Next; next == "" {
			break
		}
	}
	if fmt.Sprint(seqs) != "[1 2 3 4 5]" {
		t.Errorf("audit pages: %v, want 1 to 5", seqs)
	}
	if code := get("/api/v1/audit", nil); code != http.StatusForbidden {
		t.Errorf("audit as a viewer: %d, want 403", code)
	}
	for _, bad := range []string{"limit=0", "limit=1001", "limit=x", "cursor=not-ours", "cursor=" + strings.Repeat("A", 12)} {
		if code := get("/api/v1/images?"+bad, nil); code != http.StatusBadRequest {
			t.Errorf("images?%s: %d, want 400", bad, code)
		}
		if code := get("/api/v1/images/"+digest+"/findings?"+bad, nil); code != http.StatusBadRequest {
			t.Errorf("findings?%s: %d, want 400", bad, code)
		}
	}
}
