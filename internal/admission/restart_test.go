package admission_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/admission"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// TestRestartServerDownNoSnapshot: a webhook started fresh while the
// server is down knows no revocation, so it does not admit a digest on
// its signature alone: a revoked (but validly signed) digest is denied,
// and so is one it never saw, while the registry works.
func TestRestartServerDownNoSnapshot(t *testing.T) {
	f := newFixture(t)
	never := f.push(t, "shop/api:1.5")
	f.certify(t, never)
	cp := servertest.Start(t, server.Config{WatchInterval: time.Hour}, servertest.Image{Digest: f.certified, Tag: "1.4"})
	cp.SetCertification(t, f.certified, store.Revoked, "CVE-2026-1234 in openssl")
	cfg := f.serverConfig(cp)
	cp.Stop()

	w := newWebhook(t, cfg, nil)
	if err := w.Sync(t.Context()); err == nil {
		t.Fatal("Sync with the server stopped succeeded")
	}
	h := w.Handler()
	for name, img := range map[string]string{"revoked": f.certified.String(), "never seen": never.String()} {
		r := post(t, h, "/validate", review(t, "Pod", "shop", goodPod(img)))
		if r.Allowed || !strings.Contains(message(r), "the certification feed has not been reached since the webhook started, so revocations are unknown") {
			t.Errorf("%s digest with the server down and no snapshot: allowed=%v %q", name, r.Allowed, message(r))
		}
	}
	// The mutating webhook does not pin a tag it cannot decide.
	if r := post(t, h, "/mutate", review(t, "Pod", "shop", goodPod(f.reg.Ref("shop/api:1.4")))); r.Patch != nil {
		t.Errorf("tag pinned while revocations are unknown: %s", r.Patch)
	}

	// failurePolicy open admits with a warning.
	cfg = f.serverConfig(cp)
	cfg.FailurePolicy = admission.FailOpen
	open := newWebhook(t, cfg, nil)
	r := post(t, open.Handler(), "/validate", review(t, "Pod", "shop", goodPod(never.String())))
	if !r.Allowed || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "revocations are unknown") {
		t.Errorf("fail-open: allowed=%v warnings=%q", r.Allowed, r.Warnings)
	}
}

// TestRestartFromSnapshot: a webhook restarted while the server (and the
// registry) are down starts from the feed state its predecessor wrote:
// certified digests and their tags are admitted, revoked ones denied.
func TestRestartFromSnapshot(t *testing.T) {
	f := newFixture(t)
	revoked := f.push(t, "shop/web:2.0")
	f.certify(t, revoked)
	never := f.push(t, "shop/api:1.5")
	f.certify(t, never)
	cp := servertest.Start(t, server.Config{WatchInterval: time.Hour},
		servertest.Image{Digest: f.certified, Tag: "1.4"}, servertest.Image{Digest: revoked, Tag: "2.0"})
	cp.SetCertification(t, f.certified, store.Certified, "")
	cp.SetCertification(t, revoked, store.Certified, "")
	tmp := t.TempDir()
	cfg := func() *admission.Config {
		c := f.serverConfig(cp)
		c.Server.CacheFile = filepath.Join(tmp, "feed.json")
		return c
	}

	first := newWebhook(t, cfg(), nil)
	if err := first.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !first.Known(revoked.String()) {
		t.Fatal("certified digest not verified ahead of time")
	}
	cp.SetCertification(t, revoked, store.Revoked, "CVE-2026-7 in glibc")
	if err := first.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(cfg().Server.CacheFile)
	if err != nil {
		t.Fatalf("no snapshot written: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("snapshot mode %v, want 0600", st.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, ".feed.json.tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	cp.Stop()
	f.reg.Server.Close()
	w := newWebhook(t, cfg(), nil)
	if err := w.Sync(t.Context()); err == nil {
		t.Fatal("Sync with the server stopped succeeded")
	}
	h := w.Handler()
	if r := post(t, h, "/validate", review(t, "Deployment", "shop", deployment(f.certified.String()))); !r.Allowed {
		t.Errorf("certified digest from the snapshot denied: %s", message(r))
	}
	if r := post(t, h, "/validate", review(t, "Pod", "shop", goodPod(f.reg.Ref("shop/api:1.4")))); !r.Allowed {
		t.Errorf("certified tag from the snapshot denied: %s", message(r))
	}
	r := post(t, h, "/validate", review(t, "Pod", "shop", goodPod(revoked.String())))
	if r.Allowed || !strings.Contains(message(r), "is revoked by the control plane (CVE-2026-7 in glibc)") {
		t.Errorf("revoked digest from the snapshot: allowed=%v %q", r.Allowed, message(r))
	}
	if r := post(t, h, "/validate", review(t, "Pod", "shop", goodPod(never.String()))); r.Allowed {
		t.Error("a digest the snapshot does not hold admitted with the server and registry down")
	}

	// A corrupt snapshot is ignored: no revocation is known again.
	if err := os.WriteFile(cfg().Server.CacheFile, []byte(`{"version":1,"entries":[{`), 0o600); err != nil {
		t.Fatal(err)
	}
	w = newWebhook(t, cfg(), nil)
	r = post(t, w.Handler(), "/validate", review(t, "Pod", "shop", goodPod(f.certified.String())))
	if r.Allowed || !strings.Contains(message(r), "revocations are unknown") {
		t.Errorf("corrupt snapshot: allowed=%v %q", r.Allowed, message(r))
	}
}

// TestSnapshotOtherTrust: a snapshot written under other keys keeps its
// revocations but not its verified digests.
func TestSnapshotOtherTrust(t *testing.T) {
	f := newFixture(t)
	cp := servertest.Start(t, server.Config{WatchInterval: time.Hour}, servertest.Image{Digest: f.certified, Tag: "1.4"})
	cp.SetCertification(t, f.certified, store.Certified, "")
	file := filepath.Join(t.TempDir(), "feed.json")
	cfg := f.serverConfig(cp)
	cfg.Server.CacheFile = file
	first := newWebhook(t, cfg, nil)
	if err := first.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	cp.Stop()
	if same := newWebhook(t, cfg, nil); !same.Known(f.certified.String()) {
		t.Fatal("a digest verified under the same keys is not restored from the snapshot")
	}
	other := newFixture(t)
	cfg = other.serverConfig(cp)
	cfg.Server.CacheFile = file
	w := newWebhook(t, cfg, nil)
	if w.Known(f.certified.String()) {
		t.Error("a digest verified under other keys is trusted from the snapshot")
	}
}
