// Package reeval benchmarks continuous re-evaluation: 10,000 stored,
// certified image inventories, one new advisory against a package 30% of
// them hold, time from "database changed" to "affected set computed and
// revocations written".
//
//	go test ./bench/reeval -run '^$' -bench . -benchtime 3x
//
// The store takes about a minute to generate (one PutInventory transaction
// per image); it is generated once and cached as
// $HOME/.cache/bulwark-bench/reeval-10k-<version>.db, then copied to a
// temporary directory for every iteration (revocations are written to it).
// Set BULWARK_BENCH_NOCACHE=1 to regenerate.
package reeval

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bulwark-sec/bulwark/internal/osv"
	"github.com/bulwark-sec/bulwark/internal/reeval"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/vulndb"
)

const (
	images = 10_000
	// storeVersion names the cached store; bump it when the generator
	// changes.
	storeVersion = "v3"
	popular      = "popular-lib"
)

var (
	bookworm = &sbom.Distro{ID: "debian", VersionID: "12", VersionCodename: "bookworm"}
	// popularVersions are drawn uniformly; the new advisory affects < 2.2.0.
	popularVersions = []string{"2.0.0", "2.1.0", "2.2.0", "2.3.1"}
)

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

// base is the Debian 12 base of the project's test image: the 88 packages
// of a debootstrap bookworm minbase with their source packages, as `bulwark
// sbom` lists them (testdata/bookworm-minbase.json).
func base(tb testing.TB) []sbom.Package {
	b, err := os.ReadFile(filepath.Join("testdata", "bookworm-minbase.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var list []struct{ Name, Version, Source, SourceVersion string }
	if err := json.Unmarshal(b, &list); err != nil {
		tb.Fatal(err)
	}
	var out []sbom.Package
	for _, p := range list {
		pkg := deb(p.Name, p.Version, "")
		if p.Source != "" {
			pkg.Source = &sbom.SourcePackage{Name: p.Source, Version: p.SourceVersion}
		}
		out = append(out, pkg)
	}
	return out
}

// baseSources is the distinct source packages of the base, sorted.
func baseSources(pkgs []sbom.Package) []string {
	var out []string
	for _, p := range pkgs {
		name := p.Name
		if p.Source != nil && p.Source.Name != "" {
			name = p.Source.Name
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// inventory returns image i's inventory; r is the generator's only source
// of randomness, so the store is the same on every machine.
func inventory(r *rand.Rand, i int, basePkgs []sbom.Package) (*sbom.SBOM, string) {
	pkgs := slices.Clone(basePkgs)
	if r.IntN(100) < 30 {
		pkgs = append(pkgs, npm(popular, popularVersions[r.IntN(len(popularVersions))]))
	}
	for range 3 + r.IntN(8) {
		pkgs = append(pkgs, npm(fmt.Sprintf("npm-pkg-%d", r.IntN(2000)), fmt.Sprintf("1.%d.0", r.IntN(5))))
	}
	for range 1 + r.IntN(4) {
		pkgs = append(pkgs, gomod(fmt.Sprintf("github.com/org%d/mod", r.IntN(500)), fmt.Sprintf("v1.%d.3", r.IntN(5))))
	}
	digest := fmt.Sprintf("sha256:%064x", i)
	return &sbom.SBOM{Schema: sbom.SchemaVersion, Source: sbom.Source{Kind: "registry", Digest: digest},
		Distro: bookworm, Packages: pkgs}, digest
}

// generate writes the store of 10,000 certified images to path.
func generate(tb testing.TB, path string) {
	ctx := context.Background()
	start := time.Now()
	s, err := store.Open(ctx, path)
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	r := rand.New(rand.NewPCG(1, 2))
	basePkgs := base(tb)
	type item struct {
		inv    *sbom.SBOM
		digest string
		i      int
	}
	items := make([]item, images)
	for i := range images {
		inv, d := inventory(r, i, basePkgs)
		items[i] = item{inv, d, i}
	}
	// Encoding runs in parallel; SQLite serialises the writes.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, it := range items {
		g.Go(func() error {
			if err := s.PutInventory(gctx, it.digest, it.inv, nil); err != nil {
				return err
			}
			if err := s.PutImage(gctx, store.Image{Digest: it.digest, Repository: fmt.Sprintf("team%d/app%d", it.i%50, it.i%500),
				Created: created.Add(time.Duration(it.i) * time.Minute)}); err != nil {
				return err
			}
			return s.SetCertification(gctx, it.digest, store.Certified, "")
		})
	}
	if err := g.Wait(); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("generated %d inventories in %v", images, time.Since(start))
}

var cacheOnce sync.Once

// cachedStore returns the path of the generated store, generating it when
// it is not cached.
func cachedStore(tb testing.TB) string {
	home, err := os.UserHomeDir()
	if err != nil {
		tb.Fatal(err)
	}
	dir := filepath.Join(home, ".cache", "bulwark-bench")
	path := filepath.Join(dir, "reeval-10k-"+storeVersion+".db")
	cacheOnce.Do(func() {
		if _, err := os.Stat(path); err == nil && os.Getenv("BULWARK_BENCH_NOCACHE") == "" {
			return
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			tb.Fatal(err)
		}
		tmp := filepath.Join(tb.TempDir(), "gen.db")
		generate(tb, tmp)
		copyFile(tb, tmp, path+".tmp")
		if err := os.Rename(path+".tmp", path); err != nil {
			tb.Fatal(err)
		}
	})
	return path
}

func copyFile(tb testing.TB, from, to string) {
	in, err := os.Open(from)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
}

// record is an OSV record of one package with one fixed version.
func record(id, eco, name, fixed, cvss string) *osv.Record {
	r := &osv.Record{ID: id, Modified: "2026-11-01T00:00:00Z", Summary: "generated",
		Affected: []osv.Affected{{Package: osv.Package{Ecosystem: eco, Name: name},
			Ranges: []osv.Range{{Type: "ECOSYSTEM", Events: []osv.Event{{Introduced: "0"}, {Fixed: fixed}}}}}}}
	if eco == "Go" {
		r.Affected[0].Ranges[0].Type = "SEMVER"
	}
	if cvss != "" {
		r.Severity = []osv.Severity{{Type: "CVSS_V3", Score: cvss}}
	}
	return r
}

const (
	cvssHigh     = "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H" // 7.2
	cvssModerate = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L" // 5.3
	cvssCritical = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" // 9.8
)

func writeRecords(tb testing.TB, dir string, recs []*osv.Record) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	for _, r := range recs {
		data, err := json.Marshal(r)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, r.ID+".json"), data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// advisories is the database before the change: advisories of base source
// packages, npm and Go packages of the pools, either fixed below what the
// images carry (CRITICAL or HIGH, no finding) or affecting them at
// MODERATE (a finding below the threshold): every image passes.
func advisories(tb testing.TB) []*osv.Record {
	var recs []*osv.Record
	for i, src := range baseSources(base(tb)) {
		if i%3 != 0 {
			continue
		}
		// Fixed in a version below every real one: no finding.
		recs = append(recs, record(fmt.Sprintf("DEBIAN-CVE-2026-%05d", i), "Debian:12", src, "0~0", cvssCritical))
		if i%9 == 0 {
			// Fixed above every real one: a finding, below the threshold.
			recs = append(recs, record(fmt.Sprintf("DEBIAN-CVE-2026-%05d", 1000+i), "Debian:12", src, "99:0", cvssModerate))
		}
	}
	for i := 0; i < 2000; i += 7 {
		recs = append(recs, record(fmt.Sprintf("GHSA-npm-%04d", i), "npm", fmt.Sprintf("npm-pkg-%d", i), "1.0.0", cvssHigh))
		recs = append(recs, record(fmt.Sprintf("GHSA-npm-m%04d", i), "npm", fmt.Sprintf("npm-pkg-%d", i), "9.0.0", cvssModerate))
	}
	for i := 0; i < 500; i += 5 {
		recs = append(recs, record(fmt.Sprintf("GO-2026-%04d", i), "Go", fmt.Sprintf("github.com/org%d/mod", i), "1.0.0", cvssCritical))
	}
	recs = append(recs, record("GHSA-popular-old", "npm", popular, "1.9.0", cvssCritical))
	return recs
}

// BenchmarkReevaluate measures Reevaluate of one new HIGH advisory against
// popular-lib < 2.2.0 over the 10,000 stored certified images.
func BenchmarkReevaluate(b *testing.B) {
	ctx := context.Background()
	cached := cachedStore(b)
	dir := b.TempDir()

	db, err := vulndb.Open(filepath.Join(dir, "vuln.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	adv := filepath.Join(dir, "advisories")
	writeRecords(b, adv, advisories(b))
	if _, err := db.Import(ctx, vulndb.Source{Name: "bench", Location: adv}); err != nil {
		b.Fatal(err)
	}
	newRec := record("GHSA-popular-new", "npm", popular, "2.2.0", cvssHigh)
	writeRecords(b, adv, []*osv.Record{newRec})
	imp, err := db.Import(ctx, vulndb.Source{Name: "bench", Location: adv})
	if err != nil {
		b.Fatal(err)
	}
	if imp.Inserted != 1 {
		b.Fatalf("import of the new advisory: %v", imp)
	}
	b.Logf("advisory database: %v; importing the new advisory took %v", imp, imp.Duration)

	var last reeval.Result
	run := 0
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		path := filepath.Join(dir, fmt.Sprintf("store-%d.db", run))
		run++
		copyFile(b, cached, path)
		s, err := store.Open(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		e := &reeval.Engine{Store: s, Advisory: db}
		b.StartTimer()
		res, err := e.Reevaluate(ctx, []*osv.Record{newRec})
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		// Every revocation is written.
		for _, r := range res.Revocations[:min(20, len(res.Revocations))] {
			c, err := s.Certification(ctx, r.Digest)
			if err != nil || c.Status != store.Revoked {
				b.Fatalf("revocation of %s not written: %v %v", r.Digest, c, err)
			}
		}
		s.Close()
		os.Remove(path)
		last = res
		b.Logf("run %d: %d keys, %d affected, %d re-matched, %d revoked; index %v, re-match+revoke %v, total %v",
			run, len(res.Keys), res.Affected, res.Rematched, len(res.Revocations), res.IndexTime, res.MatchTime, res.Total)
		b.StartTimer()
	}
	b.StopTimer()
	if last.Affected < images/4 || last.Affected > images*35/100 || len(last.Revocations) == 0 || len(last.Revocations) >= last.Affected {
		b.Fatalf("unexpected result: %d affected, %d revoked", last.Affected, len(last.Revocations))
	}
	b.ReportMetric(float64(last.Affected), "affected")
	b.ReportMetric(float64(len(last.Revocations)), "revoked")
	b.ReportMetric(float64(last.Total.Milliseconds()), "ms-last")
}
