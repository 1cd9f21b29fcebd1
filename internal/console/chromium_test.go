package console

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bulwark-sec/bulwark/internal/api"
)

// chromiumPath is the headless browser to drive: $BULWARK_CHROMIUM, else
// Debian's chromium on PATH. Without one the test is skipped, unless
// BULWARK_REQUIRE_CHROMIUM=1 (CI), where it fails.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BULWARK_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("BULWARK_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("BULWARK_REQUIRE_CHROMIUM=1 but no chromium on PATH (apt-get install chromium)")
	}
	t.Skip("chromium not installed (apt-get install chromium); set BULWARK_REQUIRE_CHROMIUM=1 to fail instead")
	return ""
}

// A real browser logs in with the token on the form and sees the seeded
// data on the main pages: repositories with severities, certification and
// owner; the revoked digest with its rollback target; applications with
// their owners. The login cookie is not readable from the page. It then
// clicks from the list to an image, to one of its vulnerabilities, back to
// an affected image and to its repository, reading each page.
func TestConsoleInChromium(t *testing.T) {
	exe := chromiumPath(t)
	st, token := seed(t)
	adb := seedDetail(t, st)
	log := slog.New(slog.DiscardHandler)
	ts := httptest.NewServer(Mount(api.New(st, api.NewAuditor(st, ""), nil, log), st, Options{Logger: log, Advisories: adb, AdvisoryStatus: advisoryStatus("")}))
	t.Cleanup(ts.Close)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // root in CI containers
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The whole session: a dozen pages, with Chromium starting on a
	// loaded 2-core machine (one run took over 90 s while the suite
	// compiled beside it; quiet runs take 21-41 s).
	ctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()

	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	location := func() string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	expect := func(page, got string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(got, w) {
				t.Errorf("%s does not show %q; it shows:\n%s", page, w, got)
			}
		}
	}

	// Not logged in: the console sends the browser to the login form; a
	// wrong token is refused there.
	err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+"/ui/revocations"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), "bwk_not-a-token"),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS("p.error")),
	)
	if err != nil {
		t.Fatalf("wrong-token login: %v", err)
	}
	if loc := location(); !strings.HasSuffix(loc, "/ui/login") {
		t.Errorf("after a wrong token the browser is at %s", loc)
	}
	expect("the refused login", text("p.error"), "not valid")

	// Log in.
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS("section.repository")),
	)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if loc := location(); !strings.HasSuffix(loc, "/ui/repositories") {
		t.Errorf("after login the browser is at %s", loc)
	}
	cookie, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.cookie"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cookie, "bwk_") {
		t.Errorf("the page can read the token: document.cookie = %q", cookie)
	}

	repos := text("main")
	expect("Repositories", repos, shopRepo, legacyRepo, "CRITICAL", "HIGH", "MEDIUM", "revoked", "certified",
		"latest", "1.4.2", "sha256:7e1f2a3b4c5d", shopContact, "payments", "end-of-life", hostileRepo)
	// The findings cell of the revoked image: CRITICAL 2, HIGH 5.
	row := text(`td.digest[title="sha256:` + revokedHex + `"] ~ td.sev.critical`)
	if strings.TrimSpace(row) != "2" {
		t.Errorf("CRITICAL count of the revoked image = %q, want 2", row)
	}

	for _, pg := range []struct {
		path, ready string
		wants       []string
	}{
		{"/ui/revocations", "table.revocations", []string{"sha256:" + revokedHex, "sha256:" + targetHex, revokeReason, shopRepo, shopContact}},
		{"/ui/applications", "table.applications", []string{"shop", "payments", shopContact, "legacy-portal", "platform", "end-of-life", "legacy/**", "sha256:eeeeeeeeeeee"}},
		{"/ui/registries", "table.registries", []string{"corp", "https://registry.example.com", "shop/api"}},
		{"/ui/hygiene", "#stale", []string{"older than 180 days", "sha256:0123456789ab", "sha256:eeeeeeeeeeee"}},
	} {
		if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+pg.path), chromedp.WaitVisible(chromedp.CSS(pg.ready))); err != nil {
			t.Fatalf("%s: %v", pg.path, err)
		}
		expect(pg.path, text("main"), pg.wants...)
		if pg.path == "/ui/revocations" {
			// The rollback target sits in the revoked digest's row.
			if got := text("tr:has(td.revoked) td.rollback"); !strings.Contains(got, "sha256:"+targetHex) {
				t.Errorf("rollback cell = %q", got)
			}
		}
	}

	clickThrough(t, ctx, ts.URL, text, location, expect)

	// Log out: the pages send the browser to the login form again.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("form.logout button")),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.Navigate(ts.URL+"/ui/repositories"),
		chromedp.WaitVisible(chromedp.ID("token")),
	)
	if err != nil {
		t.Fatalf("logout: %v", err)
	}
}

// clickThrough follows links as a user would: the repository list ->
// the revoked image -> its openssl vulnerability -> the affected image ->
// its repository, asserting each page's address and content.
func clickThrough(t *testing.T, ctx context.Context, base string, text func(string) string, location func() string,
	expect func(page, got string, wants ...string)) {
	t.Helper()
	step := func(name, click, ready, wantPath string) string {
		t.Helper()
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(click)), chromedp.WaitVisible(chromedp.CSS(ready)))
		if err != nil {
			t.Fatalf("%s: clicking %s: %v", name, click, err)
		}
		if loc := location(); !strings.HasSuffix(loc, wantPath) {
			t.Errorf("%s: the browser is at %s, want …%s", name, loc, wantPath)
		}
		return text("main")
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/repositories"), chromedp.WaitVisible(chromedp.CSS("section.repository"))); err != nil {
		t.Fatal(err)
	}
	revoked := "sha256:" + revokedHex
	img := step("list -> image", `td.digest[title="`+revoked+`"] a`, "section#vulnerabilities table.findings", "/ui/images/"+revoked)
	expect("the image page", img, revoked, shopRepo, "latest",
		opensslCVE, "CRITICAL", "openssl", "3.0.11-1~deb12u2", opensslFixed, "lodash", "4.17.21",
		"FAIL", "vulnerabilities", failEvidence, "non-root-user", "image-age", waiverReason,
		"revoked", revokeReason, "grant", "revoke", "sha256:"+targetHex,
		"Advisory database: 2 records", serverKeyID, "https://cyclonedx.org/bom")
	if got := text("p.signed"); !strings.Contains(got, serverKeyID) || strings.Contains(got, "unknownkey") {
		t.Errorf("signed by = %q, want only the verified key %s", got, serverKeyID)
	}
	if got := text("tr.rule.fail td.why"); !strings.Contains(got, failEvidence) {
		t.Errorf("the failed rule's row says %q", got)
	}
	if got := text("tr.rule.waived td.why"); !strings.Contains(got, waiverReason) {
		t.Errorf("the waived rule's row says %q", got)
	}
	if got := text("#history tr.revoke td.reason"); !strings.Contains(got, revokeReason) {
		t.Errorf("the revocation's history row says %q", got)
	}
	href, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`tr.finding a.reference`), "href"))
	if err != nil || href.Value != opensslRef {
		t.Errorf("the first finding's reference links %q (%v), want %s", href.Value, err, opensslRef)
	}

	vuln := step("image -> vulnerability", `a.advisory[href$="/`+opensslAdvisory+`"]`, "section#affected", "/ui/vulnerabilities/"+opensslAdvisory)
	expect("the vulnerability page", vuln, opensslAdvisory, opensslCVE, "heap overflow", "Debian:12", opensslFixed, revoked[:19], "revoked")
	if strings.Contains(vuln, targetHex[:12]) {
		t.Error("the vulnerability page lists the image with the fixed openssl")
	}

	step("vulnerability -> image", `table.affected td.digest a`, "section#decision", "/ui/images/"+revoked)
	repo := step("image -> repository", `p.crumbs a[href$="/shop/api"]`, "section#tags", "/ui/repositories/"+shopRepo)
	expect("the repository page", repo, shopRepo, "latest", "1.4.2", revoked, "sha256:"+targetHex, shopContact)
	if got := text("#rollback"); !strings.Contains(got, "sha256:"+targetHex) {
		t.Errorf("the repository's rollback target reads %q", got)
	}
	step("repository -> rollback target", `#rollback a.rollback`, "section#certification", "/ui/images/sha256:"+targetHex)
}
