package admission_test

import (
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-sec/bulwark/internal/admission"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// clock is a settable clock for the store, so a test can stamp a change
// earlier than one already committed, as a PostgreSQL transaction that
// took its time first but committed last does.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// feedServer serves the real API over a real SQLite store whose clock the
// test sets, with a viewer token.
func feedServer(t *testing.T, c *clock) (*store.Store, string, string) {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	st, err := server.OpenStore(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	auditor := api.NewAuditor(st, audit.AnchorPath(server.DBPath(dir)))
	viewer, err := api.CreateToken(ctx, auditor, "test:bootstrap", "admission", store.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	st.Now = c.Now
	srv := httptest.NewServer(api.New(st, auditor, nil, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return st, srv.URL, viewer.Token
}

// TestFeedLateCommitWithinOverlap: a revocation stamped before the feed's
// cursor but visible only after a poll (a late commit, or a replica's
// slow clock) is still fetched by the next poll.
func TestFeedLateCommitWithinOverlap(t *testing.T) {
	f, st, w, c := feedSetup(t)
	ctx, d, other, t0 := t.Context(), f.certified.DigestStr(), f.other, c.Now()

	// A later change moves the cursor to t0+20s...
	c.Set(t0.Add(20 * time.Second))
	if err := st.SetCertification(ctx, other.DigestStr(), store.NotCertified, "not scanned yet"); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// ...then a revocation stamped t0+10s commits.
	c.Set(t0.Add(10 * time.Second))
	if err := st.SetCertification(ctx, d, store.Revoked, "CVE-2026-9 in zlib"); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if w.Known(f.certified.String()) {
		t.Fatal("a revocation stamped before the feed's cursor was never fetched")
	}
	r := post(t, w.Handler(), "/validate", review(t, "Pod", "shop", goodPod(f.certified.String())))
	if r.Allowed {
		t.Error("the late revocation's digest is admitted")
	}
	// Polling again within the overlap refetches entries already applied,
	// which changes nothing.
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if r := post(t, w.Handler(), "/validate", review(t, "Pod", "shop", goodPod(f.certified.String()))); r.Allowed {
		t.Error("the revoked digest is admitted after a poll that refetched it")
	}
}

// feedFixture is a fixture with a second, uncertified image of the same
// repository.
type feedFixture struct {
	*fixture
	other name.Digest
}

// feedSetup stores the fixture's certified image (certified) and a second
// one of its repository in a feedServer, and returns a webhook that polled
// the feed once and verified the certified digest.
func feedSetup(t *testing.T) (feedFixture, *store.Store, *admission.Webhook, *clock) {
	t.Helper()
	f := feedFixture{fixture: newFixture(t)}
	ctx := t.Context()
	c := &clock{t: time.Now().UTC().Add(-time.Hour)}
	st, url, token := feedServer(t, c)
	d, repo := f.certified.DigestStr(), f.certified.Context().Name()
	f.other = f.push(t, "shop/api:2.0")
	for _, dg := range []string{d, f.other.DigestStr()} {
		if err := st.PutImage(ctx, store.Image{Digest: dg, Repository: repo}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetCertification(ctx, d, store.Certified, ""); err != nil {
		t.Fatal(err)
	}
	cfg := f.config()
	cfg.Server = serverConfigFor(url, token)
	w := newWebhook(t, cfg, nil)
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !w.Known(f.certified.String()) {
		t.Fatal("certified digest not verified from the feed")
	}
	return f, st, w, c
}

// serverConfigFor points the webhook at url with token, polled by hand.
func serverConfigFor(url, token string) admission.ServerConfig {
	return admission.ServerConfig{URL: url, Token: token, PollInterval: time.Hour}
}

// TestFeedLateCommitBeyondOverlap: a revocation stamped long before the
// feed's time cursor (beyond any overlap: a replica's clock far behind) is
// still fetched, through the commit-ordered audit cursor.
func TestFeedLateCommitBeyondOverlap(t *testing.T) {
	f, st, w, c := feedSetup(t)
	ctx, d, other, t0 := t.Context(), f.certified.DigestStr(), f.other, c.Now()
	// A change stamped 20 minutes later moves the time cursor...
	c.Set(t0.Add(20 * time.Minute))
	if err := st.SetCertification(ctx, other.DigestStr(), store.NotCertified, "not scanned yet"); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// ...then a revocation stamped 19 minutes before it commits, audited
	// as every revocation is.
	c.Set(t0.Add(time.Minute))
	if revoked, err := st.Revoke(ctx, d, "CVE-2026-9 in zlib", "test"); err != nil || !revoked {
		t.Fatalf("Revoke: %v %v", revoked, err)
	}
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if w.Known(f.certified.String()) {
		t.Fatal("a revocation stamped beyond the overlap was never fetched")
	}
	if r := post(t, w.Handler(), "/validate", review(t, "Pod", "shop", goodPod(f.certified.String()))); r.Allowed {
		t.Error("the late revocation's digest is admitted")
	}
}
