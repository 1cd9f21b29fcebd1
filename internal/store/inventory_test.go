package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

var bookworm = &sbom.Distro{ID: "debian", VersionID: "12", VersionCodename: "bookworm"}

func deb(name, version, source string) sbom.Package {
	p := sbom.Package{Name: name, Version: version, Type: sbom.TypeDeb,
		PURL: fmt.Sprintf("pkg:deb/debian/%s@%s?distro=debian-12", name, version), Cataloger: "dpkg"}
	if source != "" {
		p.Source = &sbom.SourcePackage{Name: source, Version: version}
	}
	return p
}

func npm(name, version string) sbom.Package {
	return sbom.Package{Name: name, Version: version, Type: sbom.TypeNPM,
		PURL: fmt.Sprintf("pkg:npm/%s@%s", name, version), Cataloger: "npm"}
}

func gomod(name, version string) sbom.Package {
	return sbom.Package{Name: name, Version: version, Type: sbom.TypeGo,
		PURL: fmt.Sprintf("pkg:golang/%s@%s", name, version), Cataloger: "go-binary"}
}

func TestInventory(t *testing.T) { eachBackend(t, testInventory) }

func testInventory(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, _ := newStore(t)
	inv := &sbom.SBOM{
		Schema:  sbom.SchemaVersion,
		Created: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		Source:  sbom.Source{Kind: "registry", Name: "r.example/shop/api:1", Digest: "sha256:aaa"},
		Distro:  bookworm,
		Packages: []sbom.Package{
			deb("libssl3", "3.0.15-1~deb12u1", "openssl"),
			deb("openssl", "3.0.15-1~deb12u1", "openssl"),
			deb("bash", "5.2.15-2+b7", ""),
			npm("lodash", "4.17.20"),
			npm("lodash", "4.17.21"), // two copies: both versions indexed
			gomod("golang.org/x/net", "v0.30.0"),
			{Name: "mystery", Version: "1", Type: "binary"}, // no OSV ecosystem: not indexed
		},
	}
	if err := s.PutInventory(ctx, "sha256:aaa", inv, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Inventory(ctx, "sha256:aaa")
	if err != nil {
		t.Fatal(err)
	}
	if got.Source.Digest != "sha256:aaa" || len(got.Packages) != len(inv.Packages) || got.Distro.VersionID != "12" ||
		got.Packages[0].Source.Name != "openssl" {
		t.Errorf("Inventory round trip lost data: %+v", got)
	}
	for _, q := range []struct{ eco, name string }{
		{"Debian:12", "openssl"}, // source package, not libssl3
		{"Debian:12", "bash"},
		{"npm", "lodash"},
		{"Go", "golang.org/x/net"},
	} {
		ds, err := s.DigestsFor(ctx, q.eco, q.name)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ds, []string{"sha256:aaa"}) {
			t.Errorf("DigestsFor(%s, %s) = %q, want [sha256:aaa]", q.eco, q.name, ds)
		}
	}
	for _, q := range []struct{ eco, name string }{{"Debian:12", "libssl3"}, {"Debian:11", "openssl"}, {"npm", "react"}} {
		if ds, _ := s.DigestsFor(ctx, q.eco, q.name); len(ds) != 0 {
			t.Errorf("DigestsFor(%s, %s) = %q, want none", q.eco, q.name, ds)
		}
	}
	var rows int
	s.DB().QueryRow(`SELECT COUNT(*) FROM packages WHERE digest = 'sha256:aaa'`).Scan(&rows)
	if rows != 5 { // openssl once (two binaries, one source), bash, lodash twice, x/net
		t.Errorf("%d index rows, want 5", rows)
	}

	// DigestsFor is one range scan of the primary key, never a table scan.
	if s.Dialect() == "sqlite" {
		var id, parent, notused int
		var plan string
		err = s.DB().QueryRow(`EXPLAIN QUERY PLAN SELECT DISTINCT digest FROM packages WHERE ecosystem = ? AND name = ? ORDER BY digest`,
			"npm", "lodash").Scan(&id, &parent, &notused, &plan)
		if err != nil || !strings.Contains(plan, "COVERING INDEX") || !strings.Contains(plan, "ecosystem=? AND name=?") {
			t.Errorf("DigestsFor's plan: %q, %v; want a covering index search on (ecosystem, name)", plan, err)
		}
	}

	// Re-storing rewrites the index: lodash gone, react in.
	inv.Packages = []sbom.Package{deb("openssl", "3.0.16-1~deb12u1", "openssl"), npm("react", "18.3.1")}
	if err := s.PutInventory(ctx, "sha256:aaa", inv, nil); err != nil {
		t.Fatal(err)
	}
	if ds, _ := s.DigestsFor(ctx, "npm", "lodash"); len(ds) != 0 {
		t.Errorf("stale index rows after re-storing: %q", ds)
	}
	if ds, _ := s.DigestsFor(ctx, "npm", "react"); len(ds) != 1 {
		t.Errorf("DigestsFor(npm, react) = %q after re-storing", ds)
	}

	// The distro argument wins over the inventory's own.
	if err := s.PutInventory(ctx, "sha256:bbb", &sbom.SBOM{Packages: []sbom.Package{deb("zlib1g", "1:1.2.13", "zlib")}}, bookworm); err != nil {
		t.Fatal(err)
	}
	if ds, _ := s.DigestsFor(ctx, "Debian:12", "zlib"); !slices.Equal(ds, []string{"sha256:bbb"}) {
		t.Errorf("DigestsFor(Debian:12, zlib) = %q with the distro given apart", ds)
	}
	if _, err := s.Inventory(ctx, "sha256:none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Inventory of an unknown digest: %v", err)
	}
}

// BenchmarkDigestsFor stores 10,000 inventories of about 100 packages (a
// Debian 12 base of 90 shared by every image, plus a few npm and Go
// packages drawn at random) and times DigestsFor of an npm package 30% of
// the images carry: the affected set of one new advisory.
//
//	go test -run '^$' -bench DigestsFor ./internal/store
func BenchmarkDigestsFor(b *testing.B) {
	ctx := context.Background()
	s, _ := newStore(b)
	const images = 10_000
	var base []sbom.Package
	for i := range 90 {
		// About a third are binaries of a shared source package, as in Debian.
		src := fmt.Sprintf("src%02d", i/3*3)
		base = append(base, deb(fmt.Sprintf("lib%02d", i), fmt.Sprintf("1.%d-1", i), src))
	}
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	var inPopular int
	for i := range images {
		pkgs := slices.Clone(base)
		if r.IntN(100) < 30 {
			pkgs = append(pkgs, npm("popular-lib", "2.1.0"))
			inPopular++
		}
		for range 3 + r.IntN(8) {
			pkgs = append(pkgs, npm(fmt.Sprintf("npm-pkg-%d", r.IntN(2000)), "1.0.0"))
		}
		for range 1 + r.IntN(4) {
			pkgs = append(pkgs, gomod(fmt.Sprintf("github.com/org%d/mod", r.IntN(500)), "v1.2.3"))
		}
		digest := fmt.Sprintf("sha256:%064x", i)
		inv := &sbom.SBOM{Schema: sbom.SchemaVersion, Source: sbom.Source{Kind: "registry", Digest: digest}, Distro: bookworm, Packages: pkgs}
		if err := s.PutInventory(ctx, digest, inv, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("stored %d inventories in %v", images, time.Since(start))

	var got []string
	for b.Loop() {
		var err error
		got, err = s.DigestsFor(ctx, "npm", "popular-lib")
		if err != nil {
			b.Fatal(err)
		}
	}
	if len(got) != inPopular {
		b.Fatalf("DigestsFor found %d digests, want %d", len(got), inPopular)
	}
	one := time.Now()
	s.DigestsFor(ctx, "npm", "popular-lib")
	b.Logf("DigestsFor(npm, popular-lib): %d of %d images in %v", len(got), images, time.Since(one))
	one = time.Now()
	all, _ := s.DigestsFor(ctx, "Debian:12", "src00")
	b.Logf("DigestsFor(Debian:12, src00): %d of %d images in %v", len(all), images, time.Since(one))
	b.ReportMetric(float64(len(got)), "digests")
}

// An inventory stored as JSON by an earlier version still reads.
func TestInventoryLegacyJSON(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore storeFactory) {
		s, _ := newStore(t)
		ctx := context.Background()
		inv := &sbom.SBOM{Schema: sbom.SchemaVersion, Source: sbom.Source{Kind: "registry", Digest: "sha256:old"},
			Packages: []sbom.Package{{Name: "lodash", Version: "4.17.15", Type: sbom.TypeNPM, PURL: "pkg:npm/lodash@4.17.15"}}}
		data, _ := json.Marshal(inv)
		if _, err := s.DB().ExecContext(ctx, s.d.q(`INSERT INTO inventories (digest, sbom, stored) VALUES (?, ?, ?)`),
			"sha256:old", zenc.EncodeAll(data, nil), formatTime(s.now())); err != nil {
			t.Fatal(err)
		}
		got, err := s.Inventory(ctx, "sha256:old")
		if err != nil || len(got.Packages) != 1 || got.Packages[0].PURL != "pkg:npm/lodash@4.17.15" {
			t.Fatalf("legacy inventory = %+v, %v", got, err)
		}
	})
}
