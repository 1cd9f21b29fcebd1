package identitye2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulwark-sec/bulwark/internal/agent"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/containerdtest"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/trust"
)

var td = spiffeid.RequireTrustDomainFromString("e2e.bulwark.test")

const node = "node-e2e"

// TestWorkloadIdentityWithContainerd runs the whole route: a bulwark
// server with a trust domain, bulwark-agent (detect mode) serving the
// Workload API, and go-spiffe programs in containers of a real
// containerd. It checks that
//   - a container of a certified image gets its X.509-SVID (its SPIFFE ID
//     from the runtime's namespace and container id), completes mTLS with
//     a second one that checks the peer's SPIFFE ID, and a JWT-SVID it
//     fetches validates against the server's bundle and through the
//     Workload API;
//   - a container of an uncertified image, one whose pod namespace label
//     was forged to climb out of its path segment, and a host process get
//     PermissionDenied, and nothing is issued to them;
//   - a drifted exec ends the container's stream within 1 s; revoking the
//     digest ends the others' within 1 s; certifying a digest gives its
//     running container an SVID;
//   - every issuance and refusal is in the audit log with node, digest and
//     reason.
func TestWorkloadIdentityWithContainerd(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	probe := containerdtest.BuildStatic(t, "./testdata/svidprobe")
	ciA := containerdtest.Import(t, ctx, c, probeImage(t, probe, "certified"), "registry.example/probe:a")
	ciB := containerdtest.Import(t, ctx, c, probeImage(t, probe, "not certified"), "registry.example/probe:b")
	digA, _ := name.NewDigest("registry.example/probe@" + ciA.Target().Digest.String())
	digB, _ := name.NewDigest("registry.example/probe@" + ciB.Target().Digest.String())

	srv := servertest.Start(t, server.Config{WatchInterval: time.Hour, APILimits: api.Limits{Rate: -1},
		Identity: server.IdentityConfig{TrustDomain: td.Name(), Template: "spiffe://{trustDomain}/ns/{namespace}/container/{container}"}},
		servertest.Image{Digest: digA, Tag: "a", Certified: true}, servertest.Image{Digest: digB, Tag: "b"})

	spiffeDir := tempDir(t, "bwsp", 0o755)
	shared := tempDir(t, "bwsh", 0o777)
	// The agent's own token, bound to its node (api.NodeTokenPrefix).
	var created api.TokenCreated
	postJSON(t, srv, "/api/v1/tokens", api.TokenRequest{Name: api.NodeTokenPrefix + node, Role: store.RoleOperator}, &created)
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(created.Token), 0o600)
	sock := filepath.Join(spiffeDir, "agent.sock")
	actx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan int, 1)
	go func() {
		agentDone <- agent.Main(actx, []string{"--mode", "detect", "--containerd-address", addr, "--namespaces", testNS,
			"--server", srv.URL, "--token-file", tokenFile, "--node", node, "--spool-dir", t.TempDir(), "--status-file", "",
			"--canary-dir", t.TempDir(), "--workload-api-socket", sock}, testWriter{t}, testWriter{t})
	}()
	t.Cleanup(func() {
		stopAgent()
		if code := <-agentDone; code != agent.ExitOK {
			t.Errorf("bulwark-agent exited %d", code)
		}
	})
	waitFor(t, 30*time.Second, "the Workload API socket", func() bool { _, err := os.Stat(sock); return err == nil })

	start := time.Now()
	a1 := run(t, ctx, c, ciA, "a1", spiffeDir, shared)
	a2 := run(t, ctx, c, ciA, "a2", spiffeDir, shared)
	b1 := run(t, ctx, c, ciB, "b1", spiffeDir, shared)
	idOf := func(w *workload) string { return "spiffe://" + td.Name() + "/ns/" + testNS + "/container/" + w.id }
	for _, w := range []*workload{a1, a2} {
		e := w.waitEvent(t, "svid", start, 20*time.Second)
		if e.args[0] != idOf(w) {
			t.Fatalf("%s got %s, want %s", w.id, e.args[0], idOf(w))
		}
		t.Logf("%s: X.509-SVID %s %.0f ms after the container was started", w.id, e.args[0], e.at.Sub(start).Seconds()*1000)
	}

	// mTLS between the two, each checking the other's SPIFFE ID.
	if got := a2.do(t, "mtls-serve /shared/tls.sock"); got != "ok" {
		t.Fatalf("mtls-serve: %s", got)
	}
	if got, want := a1.do(t, "mtls-dial /shared/tls.sock"), "ok "+idOf(a2)+" hello "+idOf(a1); got != want {
		t.Fatalf("mTLS a1 -> a2: %q, want %q", got, want)
	}

	// A JWT-SVID validates against the server's bundle and through the
	// Workload API; the wrong audience does not.
	tok, ok := strings.CutPrefix(a1.do(t, "jwt db.example"), "ok ")
	if !ok {
		t.Fatalf("a1's JWT-SVID: %s", tok)
	}
	bundle := fetchBundle(t, srv.URL)
	if s, err := jwtsvid.ParseAndValidate(tok, bundle, []string{"db.example"}); err != nil || s.ID.String() != idOf(a1) {
		t.Fatalf("the JWT-SVID against the bundle: %v, %v", s, err)
	}
	if got := a2.do(t, "validate "+tok+" db.example"); got != "ok "+idOf(a1) {
		t.Fatalf("ValidateJWTSVID through the Workload API: %s", got)
	}
	if got := a2.do(t, "validate "+tok+" other.example"); !strings.HasPrefix(got, "err ") {
		t.Fatalf("a JWT-SVID for another audience validated: %s", got)
	}

	// The uncertified image and a host process get nothing; the server
	// says why (GET /api/v1/identity/decisions).
	b1.waitEvent(t, "error", start, 10*time.Second)
	waitFor(t, 10*time.Second, "the server's refusal of b1", func() bool {
		var got struct {
			Decisions []trust.Decision `json:"decisions"`
		}
		getJSON(t, srv, "/api/v1/identity/decisions?container=b1", &got)
		return len(got.Decisions) == 1 && got.Decisions[0].Reason == identity.ReasonUncertified && !got.Decisions[0].Issued
	})
	if got := b1.do(t, "jwt db.example"); got != "err PermissionDenied" {
		t.Fatalf("b1 (uncertified) asked a JWT-SVID: %s", got)
	}
	// A pod label forged to climb out of its path segment names no one.
	f1 := run(t, ctx, c, ciA, "f1", spiffeDir, shared, map[string]string{"io.kubernetes.pod.namespace": "..",
		"io.kubernetes.pod.name": "admin", "app.kubernetes.io/name": "payments"})
	waitFor(t, 10*time.Second, "the server's refusal of f1", func() bool {
		var got struct {
			Decisions []trust.Decision `json:"decisions"`
		}
		getJSON(t, srv, "/api/v1/identity/decisions?container=f1", &got)
		return len(got.Decisions) == 1 && got.Decisions[0].Reason == identity.ReasonNoID && !got.Decisions[0].Issued
	})
	if got := f1.do(t, "jwt db.example"); got != "err PermissionDenied" {
		t.Fatalf("f1 (forged pod label) asked a JWT-SVID: %s", got)
	}
	hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := workloadapi.FetchX509SVID(hctx, workloadapi.WithAddr("unix://"+sock))
	cancel()
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a host process: %v, want PermissionDenied", err)
	}

	// A drifted exec in a2: its stream ends within 1 s.
	res, ok := strings.CutPrefix(a2.do(t, "drift"), "ok ")
	if !ok {
		t.Fatalf("drift: %s", res)
	}
	execAt := parseNanos(t, res)
	e := a2.waitEvent(t, "error", execAt, 5*time.Second)
	t.Logf("drift -> a2's identity left the stream in %.1f ms (%s)", e.at.Sub(execAt).Seconds()*1000, e.args[0])
	if e.args[0] != "PermissionDenied" || e.at.Sub(execAt) > time.Second {
		t.Errorf("drift: %s after %v, want PermissionDenied within 1 s", e.args[0], e.at.Sub(execAt))
	}

	// Revocation of the digest: a1's stream ends within 1 s.
	revokedAt := time.Now()
	srv.SetCertification(t, digA, store.Revoked, "e2e: revoked")
	e = a1.waitEvent(t, "error", revokedAt, 5*time.Second)
	t.Logf("revocation -> a1's identity left the stream in %.1f ms", e.at.Sub(revokedAt).Seconds()*1000)
	if e.args[0] != "PermissionDenied" || e.at.Sub(revokedAt) > time.Second {
		t.Errorf("revocation: %s after %v, want PermissionDenied within 1 s", e.args[0], e.at.Sub(revokedAt))
	}

	// Certification of b's digest: the running b1 gets its first SVID.
	certifiedAt := time.Now()
	srv.SetCertification(t, digB, store.Certified, "e2e: certified")
	e = b1.waitEvent(t, "svid", certifiedAt, 10*time.Second)
	t.Logf("certification -> b1's first X.509-SVID in %.1f ms (client retrying every 100 ms)", e.at.Sub(certifiedAt).Seconds()*1000)

	checkAudit(t, srv, digA.DigestStr(), digB.DigestStr())
}

func tempDir(t *testing.T, prefix string, mode os.FileMode) string {
	t.Helper()
	d, err := os.MkdirTemp("", prefix) // short: socket paths are bounded
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, mode)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func parseNanos(t *testing.T, s string) time.Time {
	t.Helper()
	var ns int64
	for _, r := range s {
		if r < '0' || r > '9' {
			t.Fatalf("not a time: %q", s)
		}
		ns = ns*10 + int64(r-'0')
	}
	return time.Unix(0, ns)
}

func fetchBundle(t *testing.T, base string) *spiffebundle.Bundle {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/identity/bundle")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the bundle: %s: %s", resp.Status, b)
	}
	bundle, err := spiffebundle.Parse(td, b)
	if err != nil {
		t.Fatalf("the bundle endpoint's document: %v", err)
	}
	return bundle
}

// checkAudit finds the decisions in the audit log: issuances of a's
// digest on the node, refusals of b's (uncertified) and a's (revoked,
// drifted), each with the digest and node.
func checkAudit(t *testing.T, srv *servertest.Server, digA, digB string) {
	t.Helper()
	var recs []store.AuditRecord
	cursor := ""
	for {
		var page struct {
			Entries []store.AuditRecord `json:"entries"`
			Next    string              `json:"next"`
		}
		getJSON(t, srv, "/api/v1/audit?limit=500&cursor="+url.QueryEscape(cursor), &page)
		recs = append(recs, page.Entries...)
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	want := map[string]bool{"issue " + digA: false, "refuse uncertified " + digB: false, "refuse revoked " + digA: false}
	for _, r := range recs {
		if !strings.HasPrefix(r.Action, "identity.") {
			continue
		}
		var rec identity.Record
		if err := json.Unmarshal(r.After, &rec); err != nil {
			t.Fatalf("audit entry %d: %v", r.Seq, err)
		}
		if rec.Workload.Node != node || rec.Workload.Image == "" || !strings.HasPrefix(r.Actor, "token:") {
			t.Errorf("audit entry %d lacks node, digest or actor: %s %s", r.Seq, r.Actor, r.After)
		}
		k := "issue " + rec.Workload.Image
		if rec.Refusal != nil {
			k = "refuse " + rec.Refusal.Reason + " " + rec.Workload.Image
		}
		if _, ok := want[k]; ok {
			want[k] = true
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("no audit entry %q", k)
		}
	}
}

func postJSON(t *testing.T, srv *servertest.Server, path string, body, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+srv.Admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s: %s", path, resp.Status, got)
	}
	if err := json.Unmarshal(got, out); err != nil {
		t.Fatal(err)
	}
}

func getJSON(t *testing.T, srv *servertest.Server, path string, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+srv.Admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(errors.Join(err, errors.New(string(b))))
	}
}
