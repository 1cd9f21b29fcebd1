package admission_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-sec/bulwark/internal/admission"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// controlPlane is a real `bulwark server` on a temporary data directory.
type controlPlane struct {
	url           string
	admin, viewer string
	stop          func()
}

// startControlPlane records images (digest -> tag) in a fresh data
// directory, creates tokens as `bulwark server token create` does, and
// runs the server.
func startControlPlane(t *testing.T, images map[name.Digest]string) *controlPlane {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := server.OpenStoreAt(ctx, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	for d, tag := range images {
		if err := st.PutImage(ctx, store.Image{Digest: d.DigestStr(), Repository: d.Context().Name()}); err != nil {
			t.Fatal(err)
		}
		if err := st.SetTag(ctx, d.Context().Name(), tag, d.DigestStr()); err != nil {
			t.Fatal(err)
		}
	}
	auditor := api.NewAuditor(st, audit.AnchorPath(server.DBPath(dir)))
	admin, err := api.CreateToken(ctx, auditor, "test", "root", store.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := api.CreateToken(ctx, auditor, "test", "admission", store.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	rctx, cancel := context.WithCancel(ctx)
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(rctx, server.Config{DataDir: dir, Listen: "127.0.0.1:0", Workers: 1, PollInterval: 50 * time.Millisecond,
			WatchInterval: time.Hour, Ready: func(a net.Addr) { ready <- a },
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	cp := &controlPlane{admin: admin.Token, viewer: viewer.Token}
	select {
	case a := <-ready:
		cp.url = "http://" + a.String()
	case err := <-done:
		cancel()
		t.Fatalf("server.Run: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("server not listening after 10 s")
	}
	stopped := false
	cp.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop within 10 s")
		}
	}
	t.Cleanup(cp.stop)
	return cp
}

// setCertification sets d's status through the API, as an admin (or
// the re-evaluation after an advisory import) does.
func (cp *controlPlane) setCertification(t *testing.T, d name.Digest, status, reason string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"status": status, "reason": reason})
	req, _ := http.NewRequest(http.MethodPost, cp.url+"/api/v1/images/"+d.DigestStr()+"/certification", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cp.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("setting certification: %s %s", resp.Status, b)
	}
}

func (f *fixture) serverConfig(cp *controlPlane) *admission.Config {
	cfg := f.config()
	cfg.Server = admission.ServerConfig{URL: cp.url, Token: cp.viewer, PollInterval: time.Hour}
	return cfg
}

func TestFeedViewerOnly(t *testing.T) {
	f := newFixture(t)
	cp := startControlPlane(t, map[name.Digest]string{f.certified: "1.4"})
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
	cp := startControlPlane(t, map[name.Digest]string{f.certified: "1.4"})
	cp.setCertification(t, f.certified, store.Certified, "")
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

	cp.setCertification(t, f.certified, store.Revoked, "CVE-2026-1234 in openssl")
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
	cp := startControlPlane(t, map[name.Digest]string{f.certified: "1.4"})
	cp.setCertification(t, f.certified, store.Certified, "")
	w := newWebhook(t, f.serverConfig(cp), nil)
	if err := w.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}

	cp.stop()
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
      securityContext: {runAsNonRoot: true, runAsUser: 1000}
      containers:
      - name: app
        image: ` + image + `
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
`
}
