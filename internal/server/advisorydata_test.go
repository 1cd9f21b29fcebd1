package server

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/sign"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// With no advisory data, a scan is not a clean image: the vulnerabilities
// rule is unknown with the reason, the decision fails, nothing is
// certified though a signing key is set, and the findings say which
// database (none) they came from. After an import the same image is
// certified on its next scan, and the decision and findings name the
// database: its source, record count and last update.
func TestServerNoAdvisoryDataIsUnknown(t *testing.T) {
	reg := registrytest.New(t)
	img := lodashImage(t, "4.17.21", time.Now().Add(-24*time.Hour))
	reg.Push(t, "shop/web:1", img)
	digest := digestOf(t, img)

	keyFile := filepath.Join(t.TempDir(), "bulwark.key")
	pass := []byte("test passphrase")
	priv, _, err := sign.GenerateKey(pass)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	feed := t.TempDir() // configured, empty until the import below
	dir := t.TempDir()
	admin := bootstrap(t, dir)
	c, _ := startServerWith(t, dir, func(cfg *Config) {
		cfg.WatchInterval = time.Hour
		cfg.Policy = vulnerabilitiesOnly(t)
		cfg.SigningKey, cfg.SigningPassphrase = keyFile, pass
		cfg.AdvisorySources = []string{"npm=" + feed}
	})
	viewer, operator := roleTokens(c, admin)

	waitScan(t, c, operator.Token, reg.Ref("shop/web:1"))
	var d api.ImageDetail
	c.json("GET", "/api/v1/images/"+digest, viewer.Token, nil, http.StatusOK, &d)
	if d.Decision == nil || d.Decision.Pass {
		t.Fatalf("decision without advisory data: %+v, want a failure", d.Decision)
	}
	vuln := rule(d.Decision, policy.RuleVulnerabilities)
	if vuln.Status != policy.StatusUnknown || !strings.Contains(vuln.Message, "no advisory data") {
		t.Errorf("vulnerabilities rule without advisory data: %+v, want unknown with the reason", vuln)
	}
	if d.Decision.Advisories == nil || d.Decision.Advisories.Records != 0 {
		t.Errorf("decision's advisory data: %+v, want 0 records", d.Decision.Advisories)
	}
	if d.Certification == nil || d.Certification.Status != store.NotCertified || !strings.Contains(d.Certification.Reason, "no advisory data") {
		t.Errorf("certification without advisory data: %+v", d.Certification)
	}
	var page api.FindingsPage
	c.json("GET", "/api/v1/images/"+digest+"/findings", viewer.Token, nil, http.StatusOK, &page)
	if !strings.Contains(page.Unknown, "no advisory data") || page.Database.Records != 0 {
		t.Errorf("findings without advisory data: unknown %q, database %+v", page.Unknown, page.Database)
	}

	rec, err := os.ReadFile(filepath.Join("..", "match", "testdata", "osv", "GHSA-35jh-r3h4-6jhm.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(feed, "GHSA-35jh-r3h4-6jhm.json"), rec, 0o644); err != nil {
		t.Fatal(err)
	}
	c.json("POST", "/api/v1/advisories/import", admin.Token, map[string]any{}, http.StatusOK, nil)
	page = api.FindingsPage{}
	c.json("GET", "/api/v1/images/"+digest+"/findings", viewer.Token, nil, http.StatusOK, &page)
	if page.Unknown != "" || page.Database.Records != 1 || len(page.Database.Sources) != 1 ||
		page.Database.Sources[0].Name != "npm" || page.Database.Updated.IsZero() {
		t.Errorf("findings after the import: unknown %q, database %+v", page.Unknown, page.Database)
	}
	waitScan(t, c, operator.Token, reg.Ref("shop/web:1"))
	d = api.ImageDetail{}
	c.json("GET", "/api/v1/images/"+digest, viewer.Token, nil, http.StatusOK, &d)
	if !d.Decision.Pass || d.Certification == nil || d.Certification.Status != store.Certified {
		t.Errorf("after the import: decision %+v, certification %+v", d.Decision, d.Certification)
	}
	if a := d.Decision.Advisories; a == nil || a.Records != 1 || len(a.Sources) != 1 || a.Updated.IsZero() {
		t.Errorf("decision's advisory data after the import: %+v", a)
	}
}

// Data older than the maximum age is no better than none.
func TestAdvisoryDataTooOld(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	d := policy.AdvisoryData{Records: 10, Updated: now.Add(-8 * 24 * time.Hour)}
	if got := unusable(d, DefaultAdvisoryMaxAge, now); !strings.Contains(got, "too old") {
		t.Errorf("8-day-old data: %q, want too old", got)
	}
	if got := unusable(d, -1, now); got != "" {
		t.Errorf("no maximum: %q", got)
	}
	d.Updated = now.Add(-time.Hour)
	if got := unusable(d, DefaultAdvisoryMaxAge, now); got != "" {
		t.Errorf("fresh data: %q", got)
	}
}

func rule(d *policy.Decision, name string) policy.RuleResult {
	for _, r := range d.Rules {
		if r.Name == name {
			return r
		}
	}
	return policy.RuleResult{}
}
