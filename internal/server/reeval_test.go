package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/notify"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// lodashImage is a Debian 12 base and an app layer with lodash version,
// created at created.
func lodashImage(t testing.TB, version string, created time.Time) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image,
		layerOf(t, map[string]string{
			"etc/os-release":      "ID=debian\nVERSION_ID=\"12\"\n",
			"var/lib/dpkg/status": dpkgEntry("libc6", "2.36-9+deb12u4"),
		}),
		layerOf(t, map[string]string{
			"app/node_modules/lodash/package.json": fmt.Sprintf(`{"name": "lodash", "version": %q}`, version),
		}))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: created}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// lodashRepo is shop/web in an in-process registry: :1 with lodash
// 4.17.21 (built first), :2 with lodash 4.17.15 (built a month later),
// and an advisory feed directory, empty until advise.
type lodashRepo struct {
	reg                  *registrytest.Registry
	repo                 string // registry host/shop/web
	oldDigest, newDigest string
	feed                 string
}

func newLodashRepo(t *testing.T) lodashRepo {
	t.Helper()
	reg := registrytest.New(t)
	oldImg := lodashImage(t, "4.17.21", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	newImg := lodashImage(t, "4.17.15", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
	reg.Push(t, "shop/web:1", oldImg)
	reg.Push(t, "shop/web:2", newImg)
	return lodashRepo{reg: reg, repo: reg.Host + "/shop/web", oldDigest: digestOf(t, oldImg), newDigest: digestOf(t, newImg), feed: t.TempDir()}
}

// advise puts the HIGH lodash advisory (GHSA-35jh-r3h4-6jhm, which affects
// both images) into the feed.
func (l lodashRepo) advise(t *testing.T) {
	t.Helper()
	rec, err := os.ReadFile(filepath.Join("..", "match", "testdata", "osv", "GHSA-35jh-r3h4-6jhm.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.feed, "GHSA-35jh-r3h4-6jhm.json"), rec, 0o644); err != nil {
		t.Fatal(err)
	}
}

func digestOf(t testing.TB, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// waitScan queues a scan of ref and waits for its job to be done.
func waitScan(t *testing.T, c *client, token, ref string) {
	t.Helper()
	var accepted struct {
		Job int64 `json:"job"`
	}
	c.json("POST", "/api/v1/scans", token, map[string]string{"image": ref}, http.StatusAccepted, &accepted)
	var job struct {
		State string `json:"state"`
		Error string `json:"error"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.json("GET", fmt.Sprintf("/api/v1/jobs/%d", accepted.Job), token, nil, http.StatusOK, &job)
		if job.State == store.JobDone {
			return
		}
		if job.State == store.JobFailed || time.Now().After(deadline) {
			t.Fatalf("scan of %s: %s (%s)", ref, job.State, job.Error)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// vulnerabilitiesOnly writes a policy file whose only rule is the
// vulnerabilities rule (HIGH), and returns its path.
func vulnerabilitiesOnly(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.yaml")
	doc := `name: vulnerabilities-only
builtins:
  vulnerabilities: {maxSeverity: HIGH}
  image-age: {enabled: false}
  non-root: {enabled: false}
  lean: {enabled: false}
  required-labels: {enabled: false}
  secrets: {enabled: false}
  package-pins: {enabled: false}
  base-image: {enabled: false}
`
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// New advisory -> the affected certified image revoked -> rollback target
// published, end to end through the API.
func TestServerAdvisoryImportRevokes(t *testing.T) {
	// The advisory feed, configured at start, gets the HIGH lodash record
	// later.
	lr := newLodashRepo(t)
	reg, repo, oldDigest, newDigest, feed := lr.reg, lr.repo, lr.oldDigest, lr.newDigest, lr.feed

	dir := t.TempDir()
	admin := bootstrap(t, dir)

	c, stop := startServerWith(t, dir, func(cfg *Config) {
		cfg.Policy = vulnerabilitiesOnly(t)
		cfg.AdvisorySources = []string{"npm=" + feed}
	})
	viewer, operator := roleTokens(c, admin)

	waitScan(t, c, operator.Token, reg.Ref("shop/web:1"))
	waitScan(t, c, operator.Token, reg.Ref("shop/web:2"))

	rollbackPath := "/api/v1/repositories/" + repo + "/rollback"
	importBody := map[string]any{"sources": []string{"npm"}}
	certBody := map[string]string{"status": "certified"}
	for _, tc := range []struct {
		method, path, token string
		body                any
		want                int
	}{
		{"POST", "/api/v1/advisories/import", "", importBody, http.StatusUnauthorized},
		{"POST", "/api/v1/advisories/import", "bwk_not-a-token", importBody, http.StatusUnauthorized},
		{"POST", "/api/v1/advisories/import", viewer.Token, importBody, http.StatusForbidden},
		{"POST", "/api/v1/advisories/import", operator.Token, importBody, http.StatusForbidden},
		{"POST", "/api/v1/images/" + newDigest + "/certification", "", certBody, http.StatusUnauthorized},
		{"POST", "/api/v1/images/" + newDigest + "/certification", viewer.Token, certBody, http.StatusForbidden},
		{"POST", "/api/v1/images/" + newDigest + "/certification", operator.Token, certBody, http.StatusForbidden},
		{"GET", rollbackPath, "", nil, http.StatusUnauthorized},
		{"GET", rollbackPath, "bwk_not-a-token", nil, http.StatusUnauthorized},
	} {
		if code, b := c.do(tc.method, tc.path, tc.token, tc.body); code != tc.want {
			t.Errorf("%s %s with token %q: %d, want %d: %s", tc.method, tc.path, tc.token, code, tc.want, b)
		}
	}
	c.json("POST", "/api/v1/images/"+newDigest+"/certification", admin.Token, map[string]string{"status": "great"}, http.StatusBadRequest, nil)
	c.json("POST", "/api/v1/images/sha256:0000/certification", admin.Token, certBody, http.StatusNotFound, nil)
	c.json("POST", "/api/v1/advisories/import", admin.Token, map[string]any{"sources": []string{}}, http.StatusBadRequest, nil)
	// Only configured sources: a server-local path or a URL is refused
	// unread, with one answer whether the file exists or not.
	for _, src := range []string{"/etc/passwd", "/nonexistent", "http://127.0.0.1:1/all.zip", filepath.Dir(feed)} {
		code, b := c.do("POST", "/api/v1/advisories/import", admin.Token, map[string]any{"sources": []string{src}})
		if code != http.StatusBadRequest || !bytes.Contains(b, []byte("is not configured (configured: npm)")) {
			t.Errorf("import of %s: %d %s, want 400 not configured", src, code, b)
		}
	}
	c.json("GET", rollbackPath, viewer.Token, nil, http.StatusNotFound, nil) // nothing certified yet
	c.json("GET", "/api/v1/repositories/"+repo, viewer.Token, nil, http.StatusNotFound, nil)

	// Certify both; the newest is the rollback target.
	var cert store.Certification
	for _, d := range []string{oldDigest, newDigest} {
		c.json("POST", "/api/v1/images/"+d+"/certification", admin.Token, certBody, http.StatusOK, &cert)
		if cert.Status != store.Certified || cert.Digest != d {
			t.Fatalf("certification of %s: %+v", d, cert)
		}
	}
	var target api.RollbackTarget
	c.json("GET", rollbackPath, viewer.Token, nil, http.StatusOK, &target)
	if target.Digest != newDigest || target.Repository != repo {
		t.Errorf("rollback target before the advisory: %+v, want %s", target, newDigest)
	}

	// A webhook receiver for the revocation notification.
	const secret = "a-webhook-secret-of-some-length"
	received := make(chan notify.Event, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify([]byte(secret), r.Header.Get(notify.HeaderSignature), r.Header.Get(notify.HeaderTimestamp), body, time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
		}
		var ev notify.Event
		json.Unmarshal(body, &ev)
		received <- ev
	}))
	defer hook.Close()
	c.json("POST", "/api/v1/webhooks", admin.Token, map[string]any{"name": "sec", "url": hook.URL, "kind": "generic",
		"secret": secret, "events": []string{notify.EventRevoked}}, http.StatusCreated, nil)

	// The advisory arrives: the 4.17.15 image is revoked.
	lr.advise(t)
	var sum api.AdvisoryImportSummary
	c.json("POST", "/api/v1/advisories/import", admin.Token, importBody, http.StatusOK, &sum)
	if sum.Changed != 1 || sum.Affected != 2 || sum.Rematched != 2 || len(sum.Imports) != 1 || sum.Imports[0].Inserted != 1 {
		t.Errorf("import summary: %+v", sum)
	}
	if len(sum.Revocations) != 1 || sum.Revocations[0].Digest != newDigest || !strings.Contains(sum.Revocations[0].Reason, "CVE-2021-23337") {
		t.Fatalf("revocations: %+v, want %s for CVE-2021-23337", sum.Revocations, newDigest)
	}
	reason := sum.Revocations[0].Reason

	// The certifications as stored; the rollback target moved to 4.17.21.
	c.json("GET", rollbackPath, viewer.Token, nil, http.StatusOK, &target)
	if target.Digest != oldDigest || target.Image.Digest != oldDigest {
		t.Errorf("rollback target after the advisory: %+v, want %s", target, oldDigest)
	}

	// The hygiene counts follow the re-evaluation, without a re-scan.
	var detail imageDetail
	c.json("GET", "/api/v1/images/"+newDigest, viewer.Token, nil, http.StatusOK, &detail)
	if detail.Findings["HIGH"] != 1 {
		t.Errorf("findings of the revoked image after the re-evaluation: %v", detail.Findings)
	}

	// The notification names the revoked digest and the rollback target.
	select {
	case ev := <-received:
		var rv notify.Revocation
		json.Unmarshal(ev.Data, &rv)
		if ev.Type != notify.EventRevoked || rv.Digest != newDigest || rv.RollbackTarget != oldDigest || !strings.Contains(rv.Reason, "CVE-2021-23337") {
			t.Errorf("notification: %+v %+v", ev, rv)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no revocation notification within 10 s")
	}

	// The same import again changes nothing and revokes nothing.
	c.json("POST", "/api/v1/advisories/import", admin.Token, importBody, http.StatusOK, &sum)
	if sum.Changed != 0 || len(sum.Revocations) != 0 {
		t.Errorf("second import: %+v", sum)
	}
	stop()

	st, err := OpenStore(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for d, want := range map[string]string{oldDigest: store.Certified, newDigest: store.Revoked} {
		got, err := st.Certification(t.Context(), d)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != want {
			t.Errorf("certification of %s: %+v, want %s", d, got, want)
		}
	}

	// The audit log: the revocation with before and after, and it verifies.
	rows, err := st.DB().QueryContext(t.Context(), `SELECT actor, action, object, COALESCE(before, ''), COALESCE(after, '') FROM audit_log ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var revokeBefore, revokeAfter string
	for rows.Next() {
		var actor, action, object, before, after string
		if err := rows.Scan(&actor, &action, &object, &before, &after); err != nil {
			t.Fatal(err)
		}
		if action == "scan.request" || action == "token.create" || actor == actorScan {
			continue
		}
		got = append(got, actor+" "+action+" "+object)
		if action == "certification.revoke" {
			revokeBefore, revokeAfter = before, after
		}
	}
	rows.Close()
	adminActor := fmt.Sprintf("token:%d", admin.ID)
	want := []string{
		adminActor + " certification.set " + oldDigest,
		adminActor + " certification.set " + newDigest,
		adminActor + " webhook.put webhook:sec",
		adminActor + " certification.revoke " + newDigest,
		adminActor + " advisory.import advisories",
		adminActor + " advisory.import advisories",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var b, a map[string]string
	json.Unmarshal([]byte(revokeBefore), &b)
	json.Unmarshal([]byte(revokeAfter), &a)
	if b["status"] != store.Certified || a["status"] != store.Revoked || a["reason"] != reason {
		t.Errorf("revocation entry: before %s after %s", revokeBefore, revokeAfter)
	}
	anchor, err := audit.ReadAnchor(audit.AnchorPath(DBPath(dir)))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyAnchored(t.Context(), st.DB(), anchor)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || int64(rep.Entries) != anchor.Seq {
		t.Errorf("audit verify: %+v, anchor seq %d", rep, anchor.Seq)
	}
}
