package store

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// seedHygiene stores two repositories: shop/api (owned by "shop" by
// pattern) with an old certified tagged image, a new revoked tagged one
// and a certified untagged one; legacy/app (end of life by pattern) with
// an image of epoch created time and an untagged one whose label gives it
// to the active "rescued".
func seedHygiene(t *testing.T, s *Store, c *clock) {
	t.Helper()
	ctx := context.Background()
	now := c.Now() // 2026-03-01 12:00
	day := 24 * time.Hour
	for _, a := range []Application{
		{Name: "shop", Team: "payments", Contact: "pay@example.com", Repositories: []string{"shop/*"}},
		{Name: "legacy", Team: "platform", Lifecycle: LifecycleEndOfLife, Repositories: []string{"legacy/**"}},
		{Name: "rescued", Team: "rescue", Labels: map[string]string{"app": "rescued"}},
	} {
		if _, err := s.PutApplication(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	imgs := []Image{
		{Digest: "sha256:a1", Repository: "r.example/shop/api", Created: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
			LastScanned: now.Add(-time.Hour), Findings: map[string]int{"HIGH": 2}},
		{Digest: "sha256:a2", Repository: "r.example/shop/api", Created: now.Add(-9 * day),
			LastScanned: now.Add(-time.Hour), Findings: map[string]int{"CRITICAL": 1, "LOW": 3}},
		{Digest: "sha256:a3", Repository: "r.example/shop/api", Created: time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)},
		{Digest: "sha256:b1", Repository: "r.example/legacy/app", Created: time.Unix(0, 0), LastSeen: now.Add(-10 * day)},
		{Digest: "sha256:b2", Repository: "r.example/legacy/app", Created: now.Add(-400 * day),
			Config: []byte(`{"config":{"Labels":{"app":"rescued"}}}`)},
	}
	for _, img := range imgs {
		if err := s.PutImage(ctx, img); err != nil {
			t.Fatal(err)
		}
	}
	for _, tg := range [][3]string{
		{"r.example/shop/api", "v1", "sha256:a1"},
		{"r.example/shop/api", "latest", "sha256:a1"},
		{"r.example/legacy/app", "1.0", "sha256:b1"},
	} {
		if err := s.SetTag(ctx, tg[0], tg[1], tg[2]); err != nil {
			t.Fatal(err)
		}
	}
	c.Advance(time.Hour)
	if err := s.SetTag(ctx, "r.example/shop/api", "latest", "sha256:a2"); err != nil { // a push moves latest
		t.Fatal(err)
	}
	for d, st := range map[string]string{"sha256:a1": Certified, "sha256:a3": Certified, "sha256:a2": Certified} {
		if err := s.SetCertification(ctx, d, st, ""); err != nil {
			t.Fatal(err)
		}
	}
	c.Advance(time.Hour)
	if err := s.SetCertification(ctx, "sha256:a2", Revoked, "CVE-2026-1 (CRITICAL) in openssl"); err != nil {
		t.Fatal(err)
	}
}

func digests(rs []ImageReport) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Digest)
	}
	return out
}

func TestHygiene(t *testing.T) { eachBackend(t, testHygiene) }

func testHygiene(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, c := newStore(t)
	t0 := c.Now()
	seedHygiene(t, s, c)

	repos, err := s.HygieneRepositories(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 2 || repos[0].Repository != "r.example/legacy/app" || repos[1].Repository != "r.example/shop/api" {
		t.Fatalf("repositories = %+v", repos)
	}
	shop := repos[1]
	if shop.Owner == nil || shop.Owner.Application != "shop" || shop.Owner.Team != "payments" {
		t.Errorf("shop owner = %+v", shop.Owner)
	}
	if !shop.LastPush.Equal(t0.Add(time.Hour)) {
		t.Errorf("shop last push = %v, want %v", shop.LastPush, t0.Add(time.Hour))
	}
	if got := digests(shop.Images); !reflect.DeepEqual(got, []string{"sha256:a2", "sha256:a3", "sha256:a1"}) {
		t.Fatalf("shop images = %v, want newest created first", got)
	}
	a2, a3, a1 := shop.Images[0], shop.Images[1], shop.Images[2]
	wantA2 := ImageReport{
		Digest: "sha256:a2", Repository: "r.example/shop/api",
		Tags:    []TagRef{{Repository: "r.example/shop/api", Tag: "latest", Pushed: t0.Add(time.Hour)}},
		Created: t0.Add(-9 * 24 * time.Hour), AgeDays: 9, LastPush: t0.Add(time.Hour),
		FirstSeen: t0, LastSeen: t0, LastScanned: t0.Add(-time.Hour),
		Findings:      map[string]int{"CRITICAL": 1, "LOW": 3},
		Certification: Revoked, CertificationReason: "CVE-2026-1 (CRITICAL) in openssl",
		CertificationUpdated: t0.Add(2 * time.Hour),
		Owner:                &Owner{Application: "shop", Team: "payments", Contact: "pay@example.com", Lifecycle: LifecycleActive},
	}
	if !reflect.DeepEqual(a2, wantA2) {
		t.Errorf("a2 = %+v\nwant %+v", a2, wantA2)
	}
	if len(a1.Tags) != 1 || a1.Tags[0].Tag != "v1" || !a1.Tags[0].Pushed.Equal(t0) || a1.AgeDays != 424 ||
		a1.Findings["HIGH"] != 2 || a1.Certification != Certified {
		t.Errorf("a1 = %+v", a1)
	}
	if len(a3.Tags) != 0 || !a3.LastPush.IsZero() || !a3.LastScanned.IsZero() || len(a3.Findings) != 0 {
		t.Errorf("a3 (untagged, never scanned) = %+v", a3)
	}
	legacy := repos[0]
	if legacy.Owner == nil || legacy.Owner.Application != "legacy" || legacy.Owner.Lifecycle != LifecycleEndOfLife {
		t.Errorf("legacy owner = %+v", legacy.Owner)
	}
	for _, img := range legacy.Images {
		want := map[string]string{"sha256:b1": "legacy", "sha256:b2": "rescued"}[img.Digest]
		if img.Owner == nil || img.Owner.Application != want {
			t.Errorf("owner of %s = %+v, want %s (labels win over patterns)", img.Digest, img.Owner, want)
		}
		if img.Digest == "sha256:b1" && img.AgeDays != 10 {
			t.Errorf("b1 (epoch created) age = %d days, want 10 (since first seen)", img.AgeDays)
		}
		if img.Certification != "" {
			t.Errorf("%s certification = %q, want none", img.Digest, img.Certification)
		}
	}

	one, err := s.HygieneRepositories(ctx, "r.example/shop/api")
	if err != nil || len(one) != 1 || len(one[0].Images) != 3 {
		t.Errorf("HygieneRepositories(shop) = %+v, %v", one, err)
	}
	if none, err := s.HygieneRepositories(ctx, "r.example/none"); err != nil || len(none) != 0 {
		t.Errorf("HygieneRepositories(none) = %+v, %v", none, err)
	}

	for _, tc := range []struct {
		olderThan time.Duration
		want      []string
	}{
		{DefaultStaleAfter, []string{"sha256:b2", "sha256:a1"}},
		{9*24*time.Hour + 13*time.Hour, []string{"sha256:b2", "sha256:b1", "sha256:a3", "sha256:a1"}},
		{9*24*time.Hour - time.Hour, []string{"sha256:b2", "sha256:b1", "sha256:a2", "sha256:a3", "sha256:a1"}},
		{1000 * 24 * time.Hour, []string{}},
	} {
		stale, err := s.StaleImages(ctx, tc.olderThan)
		if err != nil {
			t.Fatal(err)
		}
		if got := digests(stale); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("StaleImages(%v) = %v, want %v", tc.olderThan, got, tc.want)
		}
	}

	untagged, err := s.UntaggedImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := digests(untagged); !reflect.DeepEqual(got, []string{"sha256:b2", "sha256:a3"}) {
		t.Errorf("UntaggedImages = %v", got)
	}

	removal, err := s.RemovalImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := digests(removal); !reflect.DeepEqual(got, []string{"sha256:b1"}) {
		t.Errorf("RemovalImages = %v, want the end-of-life application's b1 only", got)
	}
	if removal[0].Tags[0].Tag != "1.0" {
		t.Errorf("removal = %+v", removal[0])
	}

	revoked, err := s.RevokedImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantRev := []RevokedImage{{
		Digest: "sha256:a2", Repository: "r.example/shop/api", Reason: "CVE-2026-1 (CRITICAL) in openssl",
		Revoked: t0.Add(2 * time.Hour), Created: t0.Add(-9 * 24 * time.Hour),
		RollbackTarget: "sha256:a3", RollbackTargetCreated: time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC),
		Owner: &Owner{Application: "shop", Team: "payments", Contact: "pay@example.com", Lifecycle: LifecycleActive},
	}}
	if !reflect.DeepEqual(revoked, wantRev) {
		t.Errorf("RevokedImages = %+v\nwant %+v", revoked, wantRev)
	}
	// With a3 revoked too, a1 is the target of both; nothing is left
	// after a1.
	if err := s.SetCertification(ctx, "sha256:a3", Revoked, "x"); err != nil {
		t.Fatal(err)
	}
	revoked, err = s.RevokedImages(ctx)
	if err != nil || len(revoked) != 2 || revoked[0].RollbackTarget != "sha256:a1" || revoked[1].RollbackTarget != "sha256:a1" {
		t.Errorf("RevokedImages after a3's revocation = %+v, %v", revoked, err)
	}
	if err := s.SetCertification(ctx, "sha256:a1", NotCertified, ""); err != nil {
		t.Fatal(err)
	}
	revoked, err = s.RevokedImages(ctx)
	if err != nil || len(revoked) != 2 || revoked[0].RollbackTarget != "" {
		t.Errorf("RevokedImages with no certified image = %+v, %v", revoked, err)
	}
}

// With no application at all, and no end-of-life one, nothing is listed
// for removal and images have no owner.
func TestHygieneWithoutApplications(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore storeFactory) {
		ctx := context.Background()
		s, _ := newStore(t)
		if err := s.PutImage(ctx, Image{Digest: "sha256:x", Repository: "r.example/x"}); err != nil {
			t.Fatal(err)
		}
		if r, err := s.RemovalImages(ctx); err != nil || len(r) != 0 {
			t.Errorf("RemovalImages = %v, %v", r, err)
		}
		repos, err := s.HygieneRepositories(ctx, "")
		if err != nil || len(repos) != 1 || repos[0].Owner != nil || repos[0].Images[0].Owner != nil {
			t.Errorf("HygieneRepositories = %+v, %v", repos, err)
		}
	})
}
