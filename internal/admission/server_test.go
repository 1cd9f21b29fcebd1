package admission_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/admission"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

func (f *fixture) serverConfig(cp *servertest.Server) *admission.Config {
	cfg := f.config()
	cfg.Server = admission.ServerConfig{URL: cp.URL, Token: cp.Viewer, PollInterval: time.Hour}
	return cfg
}

func TestFeedViewerOnly(t *testing.T) {
	f := newFixture(t)
	cp := servertest.Start(t, server.Config{WatchInterval: time.Hour}, servertest.Image{Digest: f.certified, Tag: "1.4"})
	cfg := f.serverConfig(cp)
	cfg.Server.Token = "not-a-token"
	w := newWebhook(t, cfg, nil)
	if err := w.Sync(t.Context()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("Sync with a bad token: %v, want 401", err)
	}
}

// TestFeedRevocation: the server's certification fills the cache ahead of
// time (and maps tags), and a revocation takes effect on the next poll.
func TestFeedRevocation(t *testing.T) {
	f := newFixture(t)
	cp := servertest.Start(t, server.Config{WatchInterval: time.Hour}, servertest.Image{Digest: f.certified, Tag: "1.4"})
	cp.SetCertification(t, f.certified, store.Certified, "")
	w := newWebhook(t, f.serverConfig(cp), nil)
	h := w.Handler()
	if err := w.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !w.Known(f.certified.String()) {
		t.Fatal("a certified digest from the feed was not verified ahead of time")
	}
	if r := post(t, h, "/validate", review(t, "Pod", "shop", goodPod(f.certified.String()))); !r.Allowed {
		t.Fatalf("certified digest denied: %s", message(r))
	}

	cp.SetCertification(t, f.certified, store.Revoked, "CVE-2026-1234 in openssl")
	if err := w.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if w.Known(f.certified.String()) {
		t.Error("a revoked digest is still in the cache")
	}
	r := post(t, h, "/validate", review(t, "Pod", "shop", goodPod(f.certified.String())))
	if r.Allowed || !strings.Contains(message(r), "is revoked by the control plane (CVE-2026-1234 in openssl)") {
		t.Errorf("revoked digest: allowed=%v %q", r.Allowed, message(r))
	}
	// The tag, pinned from the feed's tag map, is denied too.
	r = post(t, h, "/validate", review(t, "Pod", "shop", goodPod(f.reg.Ref("shop/api:1.4"))))
	if r.Allowed || !strings.Contains(message(r), "revoked") {
		t.Errorf("tag of a revoked digest: allowed=%v %q", r.Allowed, message(r))
	}
}

// TestServerDownKnownAdmittedUnknownDenied is the acceptance test: with
// the control-plane server stopped (and the registry gone too), known
// certified digests keep being admitted from the cache and unknown ones
// are denied (fail-closed).
func TestServerDownKnownAdmittedUnknownDenied(t *testing.T) {
	f := newFixture(t)
	unknown := f.push(t, "shop/api:1.5")
	f.certify(t, unknown) // certified, but never seen by the webhook
	cp := servertest.Start(t, server.Config{WatchInterval: time.Hour}, servertest.Image{Digest: f.certified, Tag: "1.4"})
	cp.SetCertification(t, f.certified, store.Certified, "")
	w := newWebhook(t, f.serverConfig(cp), nil)
	if err := w.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}

	cp.Stop()
	f.reg.Server.Close()
	if err := w.Sync(t.Context()); err == nil {
		t.Fatal("Sync with the server stopped succeeded")
	}
	h := w.Handler()
	for range 3 {
		if r := post(t, h, "/validate", review(t, "Deployment", "shop", deployment(f.certified.String()))); !r.Allowed {
			t.Fatalf("known certified digest denied with the server down: %s", message(r))
		}
	}
	r := post(t, h, "/validate", review(t, "Pod", "shop", goodPod(unknown.String())))
	if r.Allowed {
		t.Fatal("unknown digest admitted with the server and registry down")
	}
	for _, want := range []string{`container "app" image ` + unknown.String(), "could not be verified within 2s", "not in the cache of certified digests"} {
		if !strings.Contains(message(r), want) {
			t.Errorf("denial %q lacks %q", message(r), want)
		}
	}
}

func deployment(image string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  template:
    metadata: {labels: {owner: shop-team}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: app
        image: ` + image + `
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
`
}
