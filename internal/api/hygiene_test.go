package api

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/store"
)

func TestParseAge(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "180d", want: 180 * 24 * time.Hour},
		{in: "1d", want: 24 * time.Hour},
		{in: "36h", want: 36 * time.Hour},
		{in: "90m", want: 90 * time.Minute},
		{in: " 7d ", want: 7 * 24 * time.Hour},
		{in: "0d", bad: true},
		{in: "-3d", bad: true},
		{in: "1.5d", bad: true},
		{in: "99999999d", bad: true},
		{in: "-1h", bad: true},
		{in: "0s", bad: true},
		{in: "d", bad: true},
		{in: "", bad: true},
		{in: "soon", bad: true},
	} {
		got, err := ParseAge(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseAge(%q) = %v, want an error", tc.in, got)
			} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", strings.TrimSpace(tc.in))) {
				t.Errorf("ParseAge(%q) error %q does not name the input", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseAge(f *testing.F) {
	for _, s := range []string{"180d", "36h", "1h30m", "0d", "-1d", "d", "9999999999999d", "1e3h", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseAge(s)
		if err == nil && d <= 0 {
			t.Errorf("ParseAge(%q) = %v without an error", s, d)
		}
	})
}

// The hygiene routes answer what the store lists: repositories with
// findings and owners, stale images by the olderThan threshold, untagged
// digests, the end-of-life application's images, revocations with their
// rollback targets.
func TestServerHygieneRoutes(t *testing.T) {
	c, api := newAPIClient(t)
	st := api.(*store.Store)
	ctx := t.Context()
	now := time.Now().UTC()
	day := 24 * time.Hour
	for _, a := range []store.Application{
		{Name: "shop", Team: "payments", Repositories: []string{"shop/*"}},
		{Name: "legacy", Team: "platform", Lifecycle: store.LifecycleEndOfLife, Repositories: []string{"legacy/*"}},
	} {
		if _, err := st.PutApplication(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for _, img := range []store.Image{
		{Digest: "sha256:old", Repository: "r.example/shop/api", Created: now.Add(-200 * day), LastScanned: now, Findings: map[string]int{"HIGH": 4}},
		{Digest: "sha256:new", Repository: "r.example/shop/api", Created: now.Add(-2 * day), LastScanned: now, Findings: map[string]int{"CRITICAL": 1}},
		{Digest: "sha256:eol", Repository: "r.example/legacy/app", Created: now.Add(-20 * day)},
	} {
		if err := st.PutImage(ctx, img); err != nil {
			t.Fatal(err)
		}
	}
	for _, tg := range [][3]string{{"r.example/shop/api", "latest", "sha256:new"}, {"r.example/legacy/app", "1", "sha256:eol"}} {
		if err := st.SetTag(ctx, tg[0], tg[1], tg[2]); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetCertification(ctx, "sha256:old", store.Certified, ""); err != nil {
		t.Fatal(err)
	}
	if err := st.SetCertification(ctx, "sha256:new", store.Revoked, "CVE-2026-9 CRITICAL"); err != nil {
		t.Fatal(err)
	}

	var repos struct{ Repositories []store.RepositoryReport }
	c.call("GET", "/api/v1/hygiene/repositories", "viewer", "", 200, &repos)
	if len(repos.Repositories) != 2 || repos.Repositories[1].Repository != "r.example/shop/api" {
		t.Fatalf("repositories = %+v", repos.Repositories)
	}
	shop := repos.Repositories[1]
	if len(shop.Images) != 2 || shop.Images[0].Digest != "sha256:new" || shop.Images[0].Findings["CRITICAL"] != 1 ||
		shop.Images[0].Certification != store.Revoked || shop.Images[0].Tags[0].Tag != "latest" ||
		shop.Owner == nil || shop.Owner.Team != "payments" || shop.Images[1].AgeDays != 200 {
		t.Errorf("shop = %+v", shop)
	}
	c.call("GET", "/api/v1/hygiene/repositories?repository=r.example/legacy/app", "viewer", "", 200, &repos)
	if len(repos.Repositories) != 1 || repos.Repositories[0].Images[0].Digest != "sha256:eol" {
		t.Errorf("one repository = %+v", repos.Repositories)
	}

	stale := func(query string) []string {
		var out struct{ Images []store.ImageReport }
		c.call("GET", "/api/v1/hygiene/stale"+query, "viewer", "", 200, &out)
		var ds []string
		for _, img := range out.Images {
			ds = append(ds, img.Digest)
		}
		return ds
	}
	for query, want := range map[string]string{
		"":                "sha256:old",
		"?olderThan=180d": "sha256:old",
		"?olderThan=10d":  "sha256:eol sha256:old",
		"?olderThan=24h":  "sha256:eol sha256:new sha256:old",
		"?olderThan=300d": "",
	} {
		if got := strings.Join(stale(query), " "); got != want {
			t.Errorf("stale%s = %q, want %q", query, got, want)
		}
	}
	for _, bad := range []string{"soon", "0d", "-5h"} {
		if rec := c.do("GET", "/api/v1/hygiene/stale?olderThan="+bad, "viewer", ""); rec.Code != 400 || !strings.Contains(rec.Body.String(), bad) {
			t.Errorf("olderThan=%s: %d %s, want 400 naming it", bad, rec.Code, rec.Body)
		}
	}

	var untagged, removal struct{ Images []store.ImageReport }
	c.call("GET", "/api/v1/hygiene/untagged", "viewer", "", 200, &untagged)
	if len(untagged.Images) != 1 || untagged.Images[0].Digest != "sha256:old" {
		t.Errorf("untagged = %+v", untagged.Images)
	}
	c.call("GET", "/api/v1/hygiene/removal", "viewer", "", 200, &removal)
	if len(removal.Images) != 1 || removal.Images[0].Digest != "sha256:eol" || removal.Images[0].Owner.Lifecycle != store.LifecycleEndOfLife {
		t.Errorf("removal = %+v", removal.Images)
	}

	var revs struct{ Revocations []store.RevokedImage }
	c.call("GET", "/api/v1/revocations", "viewer", "", 200, &revs)
	if len(revs.Revocations) != 1 || revs.Revocations[0].Digest != "sha256:new" || revs.Revocations[0].RollbackTarget != "sha256:old" ||
		revs.Revocations[0].Reason != "CVE-2026-9 CRITICAL" {
		t.Errorf("revocations = %+v", revs.Revocations)
	}
	// The existing rollback route agrees.
	var rb RollbackTarget
	c.call("GET", "/api/v1/repositories/r.example/shop/api/rollback", "viewer", "", 200, &rb)
	if rb.Digest != "sha256:old" {
		t.Errorf("rollback route = %+v", rb)
	}
}
