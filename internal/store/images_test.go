package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestImages(t *testing.T) { eachBackend(t, testImages) }

func testImages(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, c := newStore(t)
	created := time.Date(2025, 12, 24, 8, 0, 0, 0, time.UTC)
	a := Image{Digest: "sha256:aaa", Repository: "shop/api", ConfigDigest: "sha256:cfg", Created: created, Size: 1234}
	if err := s.PutImage(ctx, a); err != nil {
		t.Fatal(err)
	}
	first := c.Now()
	c.Advance(time.Hour)
	a.Size = 1300
	if err := s.PutImage(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := s.Image(ctx, "sha256:aaa")
	if err != nil {
		t.Fatal(err)
	}
	want := a
	want.FirstSeen, want.LastSeen = first, first.Add(time.Hour)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Image = %+v\nwant    %+v", got, want)
	}
	if err := s.PutImage(ctx, Image{Digest: "sha256:bbb", Repository: "shop/api", Created: created.Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutImage(ctx, Image{Digest: "sha256:ccc", Repository: "shop/web"}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListImages(ctx, "shop/api")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Digest != "sha256:bbb" || list[1].Digest != "sha256:aaa" {
		t.Errorf("ListImages = %+v, want bbb then aaa (newest first)", list)
	}
	if _, err := s.Image(ctx, "sha256:none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Image of an unknown digest: %v, want ErrNotFound", err)
	}
}

func TestTags(t *testing.T) { eachBackend(t, testTags) }

func testTags(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, c := newStore(t)
	if err := s.SetTag(ctx, "shop/api", "latest", "sha256:aaa"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetTag(ctx, "shop/api", "v1", "sha256:aaa"); err != nil {
		t.Fatal(err)
	}
	t0 := c.Now()
	c.Advance(time.Minute)
	if err := s.SetTag(ctx, "shop/api", "v1", "sha256:aaa"); err != nil { // unchanged
		t.Fatal(err)
	}
	if err := s.SetTag(ctx, "shop/api", "latest", "sha256:bbb"); err != nil { // moved
		t.Fatal(err)
	}
	tags, err := s.Tags(ctx, "shop/api")
	if err != nil {
		t.Fatal(err)
	}
	want := []Tag{
		{Repository: "shop/api", Tag: "latest", Digest: "sha256:bbb", Updated: t0.Add(time.Minute)},
		{Repository: "shop/api", Tag: "v1", Digest: "sha256:aaa", Updated: t0},
	}
	if len(tags) != len(want) || tags[0] != want[0] || tags[1] != want[1] {
		t.Errorf("Tags = %+v\nwant   %+v", tags, want)
	}
}

func TestImageScanFields(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore storeFactory) {
		s, _ := newStore(t)
		ctx := context.Background()
		cfg := []byte(`{"architecture":"amd64","config":{"User":"app","Labels":{"team":"payments"}}}`)
		scanned := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
		img := Image{Digest: "sha256:aa", Repository: "r/app", Config: cfg, BaseImage: "r/base@sha256:bb",
			LastScanned: scanned, Findings: map[string]int{"HIGH": 2, "LOW": 1}}
		if err := s.PutImage(ctx, img); err != nil {
			t.Fatal(err)
		}
		// A later sighting without scan results keeps them.
		if err := s.PutImage(ctx, Image{Digest: "sha256:aa", Repository: "r/app", BaseImage: "r/base@sha256:bb"}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Image(ctx, "sha256:aa")
		if err != nil {
			t.Fatal(err)
		}
		if !got.LastScanned.Equal(scanned) || got.Findings["HIGH"] != 2 || got.Findings["LOW"] != 1 ||
			got.Labels["team"] != "payments" || string(got.Config) != string(cfg) || got.BaseImage != "r/base@sha256:bb" {
			t.Errorf("image = %+v", got)
		}
		// A re-evaluation's counts replace the scan's.
		if err := s.SetFindings(ctx, map[string]map[string]int{"sha256:aa": {"CRITICAL": 1}, "sha256:unknown": {"LOW": 1}}); err != nil {
			t.Fatal(err)
		}
		if got, _ = s.Image(ctx, "sha256:aa"); got.Findings["CRITICAL"] != 1 || got.Findings["HIGH"] != 0 {
			t.Errorf("findings after SetFindings: %v", got.Findings)
		}
	})
}

func TestTouchAndPruneTags(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore storeFactory) {
		s, c := newStore(t)
		ctx := context.Background()
		if err := s.PutImage(ctx, Image{Digest: "sha256:aa", Repository: "r/app"}); err != nil {
			t.Fatal(err)
		}
		first := c.Now()
		c.Advance(time.Hour)
		if err := s.TouchImage(ctx, "sha256:aa"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Image(ctx, "sha256:aa"); !got.FirstSeen.Equal(first) || !got.LastSeen.Equal(first.Add(time.Hour)) {
			t.Errorf("after TouchImage: %+v", got)
		}
		for _, tag := range []string{"1", "2", "latest"} {
			s.SetTag(ctx, "r/app", tag, "sha256:aa")
		}
		s.SetTag(ctx, "r/other", "1", "sha256:aa")
		n, err := s.PruneTags(ctx, "r/app", []string{"2", "latest", "new"})
		if err != nil || n != 1 {
			t.Fatalf("PruneTags = %d, %v; want 1", n, err)
		}
		tags, _ := s.Tags(ctx, "r/app")
		other, _ := s.Tags(ctx, "r/other")
		if len(tags) != 2 || tags[0].Tag != "2" || len(other) != 1 {
			t.Errorf("tags after pruning: %+v, other repository %+v", tags, other)
		}
	})
}
