package reeval

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/osv"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/vulndb"
)

const osvTestdata = "../match/testdata/osv"

var bookworm = &sbom.Distro{ID: "debian", VersionID: "12", VersionCodename: "bookworm"}

func npm(name, version string) sbom.Package {
	return sbom.Package{Name: name, Version: version, Type: sbom.TypeNPM,
		PURL: fmt.Sprintf("pkg:npm/%s@%s", name, version), Cataloger: "npm"}
}

func deb(name, version, source string) sbom.Package {
	p := sbom.Package{Name: name, Version: version, Type: sbom.TypeDeb,
		PURL: fmt.Sprintf("pkg:deb/debian/%s@%s?distro=debian-12", name, version), Cataloger: "dpkg"}
	if source != "" {
		p.Source = &sbom.SourcePackage{Name: source, Version: version}
	}
	return p
}

func copyRecord(t *testing.T, dir, id string) *osv.Record {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(osvTestdata, id+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, id+".json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := osv.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type image struct {
	digest, repo string
	created      time.Time
	status       string
	pkgs         []sbom.Package
}

// The fixture: repository shop/web has an old image with lodash 4.17.21,
// a newer one never certified, and the newest with lodash 4.17.15;
// shop/db is a Debian image with perl and no npm package. The database
// starts with a MODERATE lodash advisory (below the HIGH threshold: every
// certified image passes) and a Debian perl advisory.
const (
	webOld   = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
	webUncer = "sha256:0000000000000000000000000000000000000000000000000000000000000002"
	webNew   = "sha256:0000000000000000000000000000000000000000000000000000000000000003"
	dbImage  = "sha256:0000000000000000000000000000000000000000000000000000000000000004"
)

func fixture(t *testing.T) (context.Context, *store.SQLite, *vulndb.DB, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, filepath.Join(dir, "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	db, err := vulndb.Open(filepath.Join(dir, "vuln.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	adv := filepath.Join(dir, "advisories")
	if err := os.Mkdir(adv, 0o755); err != nil {
		t.Fatal(err)
	}
	copyRecord(t, adv, "GHSA-29mw-wpgm-hmr9")
	copyRecord(t, adv, "DEBIAN-CVE-2023-47038")
	if _, err := db.Import(ctx, vulndb.Source{Name: "test", Location: adv}); err != nil {
		t.Fatal(err)
	}

	day := func(m int) time.Time { return time.Date(2026, time.Month(m), 1, 0, 0, 0, 0, time.UTC) }
	base := []sbom.Package{deb("libc6", "2.36-9+deb12u4", "glibc"), deb("perl-base", "5.36.0-7", "perl")}
	images := []image{
		{webOld, "shop/web", day(1), store.Certified, []sbom.Package{npm("express", "4.19.2"), npm("lodash", "4.17.21")}},
		{webUncer, "shop/web", day(2), store.NotCertified, []sbom.Package{npm("lodash", "4.17.21")}},
		{webNew, "shop/web", day(3), store.Certified, []sbom.Package{npm("express", "4.19.2"), npm("lodash", "4.17.15")}},
		{dbImage, "shop/db", day(3), store.Certified, nil},
	}
	for _, img := range images {
		inv := &sbom.SBOM{Schema: sbom.SchemaVersion, Source: sbom.Source{Kind: "registry", Digest: img.digest},
			Distro: bookworm, Packages: append(slices.Clone(base), img.pkgs...)}
		if err := s.PutInventory(ctx, img.digest, inv, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.PutImage(ctx, store.Image{Digest: img.digest, Repository: img.repo, Created: img.created}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetCertification(ctx, img.digest, img.status, ""); err != nil {
			t.Fatal(err)
		}
	}
	return ctx, s, db, adv
}

func status(t *testing.T, s *store.SQLite, digest string) string {
	t.Helper()
	c, err := s.Certification(context.Background(), digest)
	if err != nil {
		t.Fatal(err)
	}
	return c.Status
}

func TestReevaluateRevokesOnlyAffected(t *testing.T) {
	ctx, s, db, adv := fixture(t)
	e := &Engine{Store: s, Advisory: db}

	// Before: every certified image passes, and the newest is the target.
	if got, err := e.RollbackTarget(ctx, "shop/web"); err != nil || got != webNew {
		t.Fatalf("RollbackTarget before = %q, %v; want %s", got, err, webNew)
	}
	res, err := e.Reevaluate(ctx, []*osv.Record{mustRead(t, "GHSA-29mw-wpgm-hmr9")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Revocations) != 0 {
		t.Fatalf("a MODERATE advisory revoked %v", res.Revocations)
	}

	// A new HIGH lodash advisory, fixed in 4.17.21.
	rec := copyRecord(t, adv, "GHSA-35jh-r3h4-6jhm")
	imp, err := db.Import(ctx, vulndb.Source{Name: "test", Location: adv})
	if err != nil {
		t.Fatal(err)
	}
	if imp.Inserted != 1 {
		t.Fatalf("import: %v, want 1 new record", imp)
	}
	res, err = e.Reevaluate(ctx, []*osv.Record{rec})
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []Key{{"npm", "lodash"}, {"npm", "lodash-es"}}
	if !slices.Equal(res.Keys, wantKeys) {
		t.Errorf("Keys = %v, want %v", res.Keys, wantKeys)
	}
	// The Debian image holds no lodash: not even looked at. The
	// uncertified image is affected and re-matched, but has nothing to
	// revoke.
	if res.Affected != 3 || res.Rematched != 3 {
		t.Errorf("Affected, Rematched = %d, %d; want 3, 3", res.Affected, res.Rematched)
	}
	if len(res.Revocations) != 1 || res.Revocations[0].Digest != webNew {
		t.Fatalf("Revocations = %+v, want %s only", res.Revocations, webNew)
	}
	wantReason := "CVE-2021-23337 (HIGH) in lodash 4.17.15: advisory GHSA-35jh-r3h4-6jhm changed"
	if r := res.Revocations[0]; r.Reason != wantReason || r.Time.IsZero() {
		t.Errorf("Revocation = %+v, want reason %q", r, wantReason)
	}
	for d, want := range map[string]string{webOld: store.Certified, webUncer: store.NotCertified, webNew: store.Revoked, dbImage: store.Certified} {
		if got := status(t, s, d); got != want {
			t.Errorf("status of %s = %s, want %s", d[len(d)-1:], got, want)
		}
	}
	c, _ := s.Certification(ctx, webNew)
	if c.Reason != wantReason {
		t.Errorf("stored reason = %q", c.Reason)
	}

	// The rollback target skips the revoked and the never certified.
	if got, err := e.RollbackTarget(ctx, "shop/web"); err != nil || got != webOld {
		t.Errorf("RollbackTarget = %q, %v; want %s", got, err, webOld)
	}
	if got, err := e.RollbackTarget(ctx, "shop/none"); err != nil || got != "" {
		t.Errorf("RollbackTarget of an unknown repository = %q, %v", got, err)
	}

	// Idempotent: a second run revokes nothing more.
	res, err = e.Reevaluate(ctx, []*osv.Record{rec})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Revocations) != 0 || res.Rematched != 3 {
		t.Errorf("second run: %+v", res)
	}
}

func mustRead(t *testing.T, id string) *osv.Record {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(osvTestdata, id+".json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := osv.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A Debian advisory names the source package: the index finds the image
// through its binary perl-base, and a custom Judge sees the new finding.
func TestReevaluateDebianSourceAndJudge(t *testing.T) {
	ctx, s, db, _ := fixture(t)
	var judged []string
	e := &Engine{Store: s, Advisory: db, Workers: 1,
		Judge: func(_ context.Context, d string, _ *sbom.SBOM, res *match.Result) (bool, string, error) {
			judged = append(judged, d)
			for _, f := range res.Findings {
				if f.Package.Source == "perl" && slices.Contains(f.Advisories, "DEBIAN-CVE-2023-47038") {
					return false, "perl: " + f.ID, nil
				}
			}
			return true, "", nil
		}}
	res, err := e.Reevaluate(ctx, []*osv.Record{mustRead(t, "DEBIAN-CVE-2023-47038")})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Keys, []Key{{"Debian:12", "perl"}}) || res.Affected != 4 || res.Rematched != 4 {
		t.Errorf("Result = %+v", res)
	}
	if len(res.Revocations) != 3 || !strings.HasPrefix(res.Revocations[0].Reason, "perl: CVE-2023-47038") {
		t.Errorf("Revocations = %+v", res.Revocations)
	}
	// Judged all four; the one never certified stays so.
	if len(judged) != 4 || status(t, s, webUncer) != store.NotCertified {
		t.Errorf("judged %d digests; status of the uncertified: %s", len(judged), status(t, s, webUncer))
	}

	// A Judge error stops the run and is returned.
	ctx2, s2, db2, _ := fixture(t)
	boom := errors.New("boom")
	e = &Engine{Store: s2, Advisory: db2, Judge: func(context.Context, string, *sbom.SBOM, *match.Result) (bool, string, error) {
		return false, "", boom
	}}
	if _, err := e.Reevaluate(ctx2, []*osv.Record{mustRead(t, "DEBIAN-CVE-2023-47038")}); !errors.Is(err, boom) {
		t.Errorf("Reevaluate with a failing Judge: %v", err)
	}
	if got := status(t, s2, dbImage); got != store.Certified {
		t.Errorf("a failing Judge revoked: %s", got)
	}
}

func TestKeysOf(t *testing.T) {
	recs := []*osv.Record{
		{ID: "A", Affected: []osv.Affected{{Package: osv.Package{Ecosystem: "PyPI", Name: "Foo_Bar"}}, {Package: osv.Package{Ecosystem: "Ubuntu:22.04:LTS", Name: "openssl"}}}},
		{ID: "B", Affected: []osv.Affected{{Package: osv.Package{Ecosystem: "PyPI", Name: "foo-bar"}}, {}}},
		nil,
	}
	got := KeysOf(recs)
	want := []Key{{"PyPI", "foo-bar"}, {"Ubuntu:22.04", "openssl"}}
	if !slices.Equal(got, want) {
		t.Errorf("KeysOf = %v, want %v", got, want)
	}
}

// The memoised matcher gives match.Match's result, inventory by inventory,
// also when the inventories share packages.
func TestMemoMatchesMatch(t *testing.T) {
	ctx, s, db, adv := fixture(t)
	copyRecord(t, adv, "GHSA-35jh-r3h4-6jhm")
	copyRecord(t, adv, "GHSA-p6mc-m468-83gw")
	copyRecord(t, adv, "DEBIAN-CVE-2020-10543")
	if _, err := db.Import(ctx, vulndb.Source{Name: "test", Location: adv}); err != nil {
		t.Fatal(err)
	}
	m := newMatcher(db)
	for _, d := range []string{webOld, webUncer, webNew, dbImage, webNew} {
		inv, err := s.Inventory(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		want, err := match.Match(ctx, db, inv)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Match(ctx, inv)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: memoised\n%+v\nmatch.Match\n%+v", d, got, want)
		}
		if d == webNew && len(want.Findings) < 3 {
			t.Errorf("%s: only %d findings, the fixture is too thin", d, len(want.Findings))
		}
	}
}
