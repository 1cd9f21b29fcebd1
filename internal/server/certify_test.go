package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/certify"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/sign"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// pushEvent is a CNCF distribution notification of one manifest push.
func pushEvent(host, repo, tag, digest string) map[string]any {
	return map[string]any{
		"id": "e-" + tag, "action": "push",
		"target": map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
			"repository": repo, "tag": tag, "url": "http://" + host + "/v2/" + repo + "/manifests/" + digest,
		},
		"request": map[string]any{"host": host, "method": "PUT"},
	}
}

// Push -> notification -> scan -> certification, on a registry that needs
// credentials: the server signs the passing image (a signature cosign
// verifies: same format) and records the failing one as not certified
// with the reason; the credentials are stored sealed and never shown.
func TestServerCertifies(t *testing.T) {
	const user, password = "ci-bot", "s3cret-registry-password"
	reg := registrytest.NewWithAuth(t, user, password)
	good := lodashImage(t, "4.17.21", time.Now().Add(-24*time.Hour))
	bad := lodashImage(t, "4.17.15", time.Now().Add(-24*time.Hour))
	reg.Push(t, "shop/web:1", good)
	reg.Push(t, "shop/web:2", bad)
	goodDigest, badDigest := digestOf(t, good), digestOf(t, bad)
	repo := reg.Host + "/shop/web"

	keyDir := t.TempDir()
	pass := []byte("test passphrase")
	priv, pub, err := sign.GenerateKey(pass)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(keyDir, "bulwark.key")
	if err := os.WriteFile(keyFile, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	feed := t.TempDir()
	rec, err := os.ReadFile(filepath.Join("..", "match", "testdata", "osv", "GHSA-35jh-r3h4-6jhm.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(feed, "GHSA-35jh-r3h4-6jhm.json"), rec, 0o644)

	dir := t.TempDir()
	admin := bootstrap(t, dir)
	policyFile := vulnerabilitiesOnly(t)
	c, stop := startServerWith(t, dir, func(cfg *Config) {
		cfg.WatchInterval = time.Hour
		cfg.Policy = policyFile
		cfg.SigningKey, cfg.SigningPassphrase = keyFile, pass
		cfg.AdvisorySources = []string{"npm=" + feed}
	})
	viewer, operator := roleTokens(c, admin)

	var view api.RegistryView
	c.json("POST", "/api/v1/registries", admin.Token, map[string]any{
		"name": "private", "url": "http://" + reg.Host, "repositories": []string{"shop/web"},
		"credentials": map[string]string{"username": user, "password": password},
	}, http.StatusCreated, &view)
	if !view.HasCredentials {
		t.Errorf("registry view: %+v", view)
	}
	// Updating without credentials keeps them.
	c.json("POST", "/api/v1/registries", admin.Token, map[string]any{"name": "private", "url": "http://" + reg.Host}, http.StatusCreated, &view)
	if !view.HasCredentials {
		t.Error("an update without credentials dropped them")
	}
	// Moved to another host without credentials: they do not follow.
	c.json("POST", "/api/v1/registries", admin.Token, map[string]any{"name": "elsewhere", "url": "http://" + reg.Host,
		"credentials": map[string]string{"username": user, "password": password}}, http.StatusCreated, &view)
	c.json("POST", "/api/v1/registries", admin.Token, map[string]any{"name": "elsewhere", "url": "https://attacker.example"}, http.StatusCreated, &view)
	if view.HasCredentials {
		t.Error("the credentials followed a URL change to another host")
	}
	_, list := c.do("GET", "/api/v1/registries", viewer.Token, nil)
	if bytes.Contains(list, []byte(password)) || !bytes.Contains(list, []byte(`"hasCredentials": true`)) {
		t.Errorf("GET /api/v1/registries: %s", list)
	}

	envelope := map[string]any{"events": []map[string]any{
		pushEvent(reg.Host, "shop/web", "1", goodDigest),
		pushEvent(reg.Host, "shop/web", "2", badDigest),
	}}
	c.json("POST", "/api/v1/notifications/registry", operator.Token, envelope, http.StatusAccepted, nil)
	certified := func(status string) func(imageDetail) bool {
		return func(d imageDetail) bool { return d.Certification != nil && d.Certification.Status == status }
	}
	g := waitImage(c, viewer.Token, goodDigest, 20*time.Second, certified(store.Certified))
	b := waitImage(c, viewer.Token, badDigest, 20*time.Second, certified(store.NotCertified))
	if !g.Decision.Pass || g.Findings["HIGH"] != 0 {
		t.Errorf("good image: %+v", g)
	}
	if b.Decision.Pass || b.Findings["HIGH"] != 1 || !strings.Contains(b.Certification.Reason, "CVE-2021-23337") {
		t.Errorf("bad image: %+v, certification %+v", b, b.Certification)
	}

	// The findings, recomputed from the stored inventory.
	var rep struct {
		Findings []struct {
			ID      string   `json:"id"`
			Aliases []string `json:"aliases"`
		} `json:"findings"`
	}
	c.json("GET", "/api/v1/images/"+badDigest+"/findings", viewer.Token, nil, http.StatusOK, &rep)
	if len(rep.Findings) != 1 || !strings.Contains(rep.Findings[0].ID+strings.Join(rep.Findings[0].Aliases, ","), "CVE-2021-23337") {
		t.Errorf("findings of the bad image: %+v", rep)
	}
	c.json("GET", "/api/v1/images/"+goodDigest+"/findings", viewer.Token, nil, http.StatusOK, &rep)
	if len(rep.Findings) != 0 {
		t.Errorf("findings of the good image: %+v", rep)
	}

	// The certification is in the registry, in cosign's format, with the
	// three attestations.
	pubKey, err := sign.LoadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	creds := authn.NewMultiKeychain(staticKeychain{reg.Host, &authn.Basic{Username: user, Password: password}})
	v, err := sign.Verify(t.Context(), repo+"@"+goodDigest, pubKey, sign.Requirements{Attestations: certify.Predicates},
		sign.Options{Keychain: creds})
	if err != nil {
		t.Fatalf("verifying the server's certification: %v", err)
	}
	if len(v.Signatures) == 0 {
		t.Errorf("verified: %+v", v)
	}
	if _, err := sign.Verify(t.Context(), repo+"@"+badDigest, pubKey, sign.Requirements{}, sign.Options{Keychain: creds}); err == nil {
		t.Error("the failing image has a signature")
	}
	stop()

	// At rest: the credentials are sealed, the audit log has the grant.
	st, err := OpenStore(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var sealed []byte
	if err := st.DB().QueryRow(`SELECT credentials FROM registries WHERE name = 'private'`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if len(sealed) == 0 || bytes.Contains(sealed, []byte(password)) || bytes.Contains(sealed, []byte(user)) {
		t.Errorf("stored credentials are not sealed: %q", sealed)
	}
	var grants int
	st.DB().QueryRow(`SELECT COUNT(*) FROM audit_log WHERE action = 'certification.grant' AND object = ? AND actor = ?`, goodDigest, actorScan).Scan(&grants)
	if grants != 1 {
		t.Errorf("%d certification.grant entries for %s, want 1", grants, goodDigest)
	}
	verifyAudit(t, dir)
	logs, _ := json.Marshal(v)
	if bytes.Contains(logs, []byte(password)) {
		t.Error("password in the verification result")
	}
}

// staticKeychain answers one registry's credentials.
type staticKeychain struct {
	host string
	auth authn.Authenticator
}

func (k staticKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() == k.host {
		return k.auth, nil
	}
	return authn.Anonymous, nil
}
