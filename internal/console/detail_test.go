package console

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/vulndb"
)

// Advisory records of the detail fixture.
const (
	opensslAdvisory = "DEBIAN-CVE-2026-31337"
	opensslCVE      = "CVE-2026-31337"
	opensslRef      = "https://security-tracker.debian.org/tracker/CVE-2026-31337"
	opensslFixed    = "3.0.13-1~deb12u1"
	lodashAdvisory  = "GHSA-c0ns-0le7-test"
	waiverReason    = "rebuilt weekly; the base is pinned upstream"
	failEvidence    = "CVE-2026-31337 (CRITICAL) in openssl 3.0.11-1~deb12u2"
)

var advisoryRecords = map[string]string{
	opensslAdvisory: `{"id":"DEBIAN-CVE-2026-31337","modified":"2026-03-01T00:00:00Z","published":"2026-02-27T00:00:00Z",
		"aliases":["CVE-2026-31337"],"summary":"openssl: heap overflow in the record layer",
		"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
		"affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},
			"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.13-1~deb12u1"}]}]}],
		"references":[{"type":"WEB","url":"https://www.openssl.org/news/secadv/"},{"type":"ADVISORY","url":"https://security-tracker.debian.org/tracker/CVE-2026-31337"}]}`,
	// A reference that is not a web address is never linked: the finding
	// links osv.dev instead.
	lodashAdvisory: `{"id":"GHSA-c0ns-0le7-test","modified":"2026-03-01T00:00:00Z",
		"summary":"lodash: prototype pollution","database_specific":{"severity":"MODERATE"},
		"affected":[{"package":{"ecosystem":"npm","name":"lodash"},
			"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"4.17.21"}]}]}],
		"references":[{"type":"ADVISORY","url":"javascript:alert(1)"}]}`,
}

// seedDetail adds to seed's store what the detail pages show: inventories
// (the revoked image holds an openssl and a lodash the advisories name,
// its rollback target the fixed openssl), a failed decision with a passed,
// a failed and a waived rule, and the revoked image's audited history
// (grant, then revoke). It returns the advisory database.
func seedDetail(t *testing.T, st *store.Store) *vulndb.DB {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	adb, err := vulndb.Open(filepath.Join(dir, "osv.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { adb.Close() })
	recs := filepath.Join(dir, "records")
	if err := os.Mkdir(recs, 0o755); err != nil {
		t.Fatal(err)
	}
	for id, js := range advisoryRecords {
		if err := os.WriteFile(filepath.Join(recs, id+".json"), []byte(js), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := adb.Import(ctx, vulndb.Source{Name: "test", Location: recs}); err != nil {
		t.Fatal(err)
	}

	deb := func(name, version string) sbom.Package {
		return sbom.Package{Name: name, Version: version, Type: sbom.TypeDeb, Cataloger: "dpkg",
			PURL:   "pkg:deb/debian/" + name + "@" + version + "?distro=debian-12",
			Source: &sbom.SourcePackage{Name: name, Version: version}}
	}
	lodash := sbom.Package{Name: "lodash", Version: "4.17.15", Type: sbom.TypeNPM, Cataloger: "npm", PURL: "pkg:npm/lodash@4.17.15"}
	bookworm := &sbom.Distro{ID: "debian", VersionID: "12", VersionCodename: "bookworm"}
	for digest, pkgs := range map[string][]sbom.Package{
		"sha256:" + revokedHex: {deb("libc6", "2.36-9+deb12u4"), deb("openssl", "3.0.11-1~deb12u2"), lodash},
		"sha256:" + targetHex:  {deb("libc6", "2.36-9+deb12u4"), deb("openssl", opensslFixed)},
	} {
		inv := &sbom.SBOM{Schema: sbom.SchemaVersion, Source: sbom.Source{Kind: "registry", Digest: digest}, Distro: bookworm, Packages: pkgs}
		if err := st.PutInventory(ctx, digest, inv, bookworm); err != nil {
			t.Fatal(err)
		}
	}

	d := &policy.Decision{Policy: "gold", PolicyDigest: "sha256:" + strings.Repeat("9", 64), Image: shopRepo + ":latest",
		Digest: "sha256:" + revokedHex, Time: time.Now().UTC(), Pass: false, Rules: []policy.RuleResult{
			{Name: "vulnerabilities", Description: "no finding at or above HIGH", Status: policy.StatusFail,
				Message: "2 findings at or above HIGH", Evidence: []string{failEvidence}},
			{Name: "non-root-user", Description: "the image runs as a non-root user", Status: policy.StatusPass},
			{Name: "image-age", Description: "built in the last 90 days", Status: policy.StatusWaived,
				Waived:  []string{"created 400 days ago"},
				Waivers: []policy.Waiver{{Rule: "image-age", Reason: waiverReason, Owner: "platform", Expires: time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)}}},
		}}
	d.Advisories = &policy.AdvisoryData{Records: 2, Updated: advisoryUpdated,
		Sources: []policy.AdvisorySource{{Name: "test", Records: 2, Updated: advisoryUpdated}}}
	if err := st.PutDecision(ctx, "sha256:"+revokedHex, d); err != nil {
		t.Fatal(err)
	}
	for _, e := range []audit.Entry{
		{Actor: "system:scan", Action: "certification.grant", Object: "sha256:" + revokedHex,
			After: []byte(`{"status":"certified","reason":"passed policy gold (sha256:999999999999)"}`)},
		{Actor: "system:reevaluate", Action: "certification.revoke", Object: "sha256:" + revokedHex,
			Before: []byte(`{"status":"certified"}`), After: []byte(`{"status":"revoked","reason":` + jsonString(revokeReason) + `}`)},
	} {
		if _, err := st.Audited(ctx, func(*store.Store) ([]audit.Entry, error) { return []audit.Entry{e}, nil }); err != nil {
			t.Fatal(err)
		}
	}
	sigs := []store.Attachment{
		{Artifact: "sha256:" + strings.Repeat("5a", 32), Subject: "sha256:" + revokedHex, Kind: "signature",
			MediaType: "application/vnd.dev.cosign.simplesigning.v1+json", KeyID: serverKeyID, Verified: true},
		{Artifact: "sha256:" + strings.Repeat("5a", 32), Subject: "sha256:" + revokedHex, Kind: "signature",
			MediaType: "application/vnd.dev.cosign.simplesigning.v1+json", KeyID: "sha256:unknownkey"},
	}
	atts := []store.Attachment{{Artifact: "sha256:" + strings.Repeat("a7", 32), Subject: "sha256:" + revokedHex, Kind: "attestation",
		MediaType: "application/vnd.dsse.envelope.v1+json", PredicateType: "https://cyclonedx.org/bom", KeyID: serverKeyID, Verified: true}}
	if err := st.ReplaceAttachments(ctx, shopRepo, "sha256-"+revokedHex+".sig", sigs); err != nil {
		t.Fatal(err)
	}
	if err := st.ReplaceAttachments(ctx, shopRepo, "sha256-"+revokedHex+".att", atts); err != nil {
		t.Fatal(err)
	}
	return adb
}

// advisoryUpdated is when the fixture's advisory data was imported.
var advisoryUpdated = time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC)

// advisoryStatus is the console's AdvisoryStatus over the fixture's
// database, usable or not.
func advisoryStatus(unusable string) func(context.Context) (api.AdvisoryStatus, error) {
	return func(context.Context) (api.AdvisoryStatus, error) {
		return api.AdvisoryStatus{Unusable: unusable, Version: "1", Data: policy.AdvisoryData{Records: 2, Updated: advisoryUpdated,
			Sources: []policy.AdvisorySource{{Name: "test", Records: 2, Updated: advisoryUpdated}}}}, nil
	}
}

// serverKeyID is the key the fixture's verified signature was made with.
const serverKeyID = "sha256:5e4fe1d0c0ffee0000000000000000000000000000000000000000000000beef"

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// detailConsole is the console over the seeded store with the detail
// fixture and its advisory database, and a getter logged in as a viewer.
func detailConsole(t *testing.T) (http.Handler, func(path string) (int, string)) {
	t.Helper()
	st, token := seed(t)
	adb := seedDetail(t, st)
	h := New(st, Options{Logger: slog.New(slog.DiscardHandler), Advisories: adb, AdvisoryStatus: advisoryStatus("")})
	ck := loggedIn(t, h, token)
	get := func(path string) (int, string) {
		t.Helper()
		r := httptest.NewRequest("GET", path, nil)
		r.AddCookie(ck)
		rec := serve(h, r)
		body := rec.Body.String()
		if strings.Contains(body, "<script>") || strings.Contains(body, `href="javascript:`) {
			t.Errorf("GET %s: unescaped script or a javascript: link from the data", path)
		}
		return rec.Code, body
	}
	return h, get
}

func wantAll(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s does not show %q", what, w)
		}
	}
}

// The image page shows the findings recomputed now (package, installed
// and fixed versions, severity, the advisory's page and reference), every
// rule of the decision with why, the audited history, the certification
// and the repository's rollback target.
func TestConsoleImagePage(t *testing.T) {
	_, get := detailConsole(t)
	code, body := get("/ui/images/sha256:" + revokedHex)
	if code != 200 {
		t.Fatalf("image page: %d\n%s", code, body)
	}
	wantAll(t, "the image page", body,
		// facts
		shopRepo, "latest", shopContact,
		// vulnerabilities
		opensslCVE, "CRITICAL", "<code>openssl</code>", "3.0.11-1~deb12u2", opensslFixed,
		`href="/ui/vulnerabilities/`+opensslAdvisory+`"`, `href="`+opensslRef+`"`,
		"lodash", "4.17.15", "4.17.21", "MEDIUM", `href="https://osv.dev/vulnerability/`+lodashAdvisory+`"`,
		"2 findings", "Advisory database: 2 records, updated 2026-03-02 06:00", "test</span> (2, 2026-03-02 06:00)",
		// decision
		"FAIL", "gold", "Findings matched against: 2 records", "vulnerabilities", "2 findings at or above HIGH", failEvidence,
		"non-root-user", `status pass`, "image-age", "waived: created 400 days ago", waiverReason, "2027-01-31",
		// certification and history
		`cert revoked`, revokeReason, "grant", "revoke", "system:reevaluate", "passed policy gold",
		// rollback
		`href="/ui/images/sha256:`+targetHex+`"`,
		// signatures: the verified key, the attestation's type, and the
		// unverified signature listed as such
		"Signed by: <code class=\"key\">"+serverKeyID, "https://cyclonedx.org/bom", "sha256-"+revokedHex+".att",
		"not verified", "sha256:unknownkey",
	)
	// The fixed openssl of the rollback target is no finding there.
	_, target := get("/ui/images/sha256:" + targetHex)
	wantAll(t, "the rollback target's page", target, "0 findings", "this image", "No decision is stored", "None found in the registry")
	if strings.Contains(target, opensslCVE) {
		t.Errorf("the rollback target (openssl %s) lists %s", opensslFixed, opensslCVE)
	}
	// An image without inventory says so; one never judged too.
	_, old := get("/ui/images/sha256:" + oldHex)
	wantAll(t, "an image without inventory", old, "No inventory is stored", "no certification change")
}

// Bad and unknown addresses are a 404 page naming what was not found,
// never a 500, and still need a login.
func TestConsoleDetailNotFound(t *testing.T) {
	h, get := detailConsole(t)
	for path, want := range map[string]string{
		"/ui/images/sha256:" + strings.Repeat("f", 64): "has not seen this digest",
		"/ui/images/sha256:AB%2FC":                     "not a digest",
		"/ui/images/latest":                            "not a digest",
		"/ui/vulnerabilities/CVE-1999-0001":            "not in this server",
		"/ui/vulnerabilities/%3Cscript%3E":             "not an advisory id",
		"/ui/repositories/registry.example.com/nope":   "no image of this repository",
		"/ui/repositories/":                            "no repository named",
	} {
		code, body := get(path)
		if code != http.StatusNotFound || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, want 404 with %q:\n%s", path, code, want, body)
		}
	}
	for _, p := range []string{"/ui/images/sha256:" + revokedHex, "/ui/vulnerabilities/" + opensslAdvisory, "/ui/repositories/" + shopRepo} {
		if rec := serve(h, httptest.NewRequest("GET", p, nil)); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/login" {
			t.Errorf("GET %s without a cookie: %d to %q", p, rec.Code, rec.Header().Get("Location"))
		}
	}
	// Without an advisory database the image page says so; the
	// vulnerability pages are 404.
	st, token := seed(t)
	bare := New(st, Options{Logger: slog.New(slog.DiscardHandler)})
	for path, want := range map[string]string{
		"/ui/images/sha256:" + revokedHex:        "no advisory database",
		"/ui/vulnerabilities/" + opensslAdvisory: "no advisory database",
	} {
		r := httptest.NewRequest("GET", path, nil)
		r.AddCookie(loggedIn(t, bare, token))
		rec := serve(bare, r)
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s without advisories: %d, want %q", path, rec.Code, want)
		}
	}
}

// The vulnerability page shows the record and the images it affects now:
// the image with the vulnerable openssl, not the one with the fixed one.
func TestConsoleVulnerabilityPage(t *testing.T) {
	_, get := detailConsole(t)
	code, body := get("/ui/vulnerabilities/" + opensslAdvisory)
	if code != 200 {
		t.Fatalf("vulnerability page: %d\n%s", code, body)
	}
	wantAll(t, "the vulnerability page", body, opensslAdvisory, opensslCVE, "heap overflow in the record layer",
		`href="`+opensslRef+`"`, "Debian:12", opensslFixed,
		`href="/ui/images/sha256:`+revokedHex+`"`, "3.0.11-1~deb12u2", "CRITICAL", "cert revoked", "(2)")
	if strings.Contains(body, targetHex) {
		t.Error("the vulnerability page lists the image with the fixed openssl")
	}
	_, lodash := get("/ui/vulnerabilities/" + lodashAdvisory)
	wantAll(t, "the lodash page", lodash, `href="https://osv.dev/vulnerability/`+lodashAdvisory+`"`, "<code>4.17.21</code>", "4.17.15", "MEDIUM")
	if strings.Contains(lodash, "javascript:") {
		t.Error("a javascript: reference is shown")
	}
}

// The repository page lists its tags and images, each linking to the
// image page, and the rollback target; a repository name with URL
// metacharacters still reaches its page.
func TestConsoleRepositoryPage(t *testing.T) {
	_, get := detailConsole(t)
	code, body := get("/ui/repositories/" + shopRepo)
	if code != 200 {
		t.Fatalf("repository page: %d\n%s", code, body)
	}
	wantAll(t, "the repository page", body, shopRepo, shopContact,
		`<span class="tag">latest</span>`, `<span class="tag">1.4.2</span>`,
		`href="/ui/images/sha256:`+revokedHex+`"`, `href="/ui/images/sha256:`+oldHex+`"`,
		`class="digest rollback" href="/ui/images/sha256:`+targetHex+`"`)
	// The list links every repository and digest to its page.
	_, list := get("/ui/repositories")
	wantAll(t, "the list", list, `href="/ui/repositories/`+shopRepo+`"`, `href="/ui/images/sha256:`+revokedHex+`"`,
		`href="/ui/repositories/registry.example.com/%3Cscript%3Ealert%281%29%3C/script%3E"`)
	code, hostile := get("/ui/repositories/registry.example.com/%3Cscript%3Ealert%281%29%3C/script%3E")
	if code != 200 || !strings.Contains(hostile, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("hostile repository page: %d", code)
	}
	_, rev := get("/ui/revocations")
	wantAll(t, "the revocations", rev, `href="/ui/images/sha256:`+revokedHex+`"`, `href="/ui/images/sha256:`+targetHex+`"`)
}

// A store without attachments (no AttachmentStore) shows that it keeps
// none, rather than "none found".
func TestConsoleImageWithoutAttachmentStore(t *testing.T) {
	st, token := seed(t)
	type plain struct{ Store } // hides Attachments
	h := New(plain{st}, Options{Logger: slog.New(slog.DiscardHandler), Advisories: seedDetail(t, st)})
	r := httptest.NewRequest("GET", "/ui/images/sha256:"+revokedHex, nil)
	r.AddCookie(loggedIn(t, h, token))
	rec := serve(h, r)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "does not record signatures") {
		t.Errorf("image page over a store without attachments: %d", rec.Code)
	}
}

// Findings made with unusable advisory data (empty, too old) say so above
// the list: "0 findings" from no data is not a clean image.
func TestConsoleImageUnusableAdvisoryData(t *testing.T) {
	st, token := seed(t)
	h := New(st, Options{Logger: slog.New(slog.DiscardHandler), Advisories: seedDetail(t, st),
		AdvisoryStatus: advisoryStatus("the advisory data is 41 days old (maximum 7 days)")})
	r := httptest.NewRequest("GET", "/ui/images/sha256:"+targetHex, nil)
	r.AddCookie(loggedIn(t, h, token))
	rec := serve(h, r)
	wantAll(t, "the image page on old data", rec.Body.String(),
		"These findings cannot be trusted: the advisory data is 41 days old (maximum 7 days)", "0 findings",
		"No decision is stored")
}
