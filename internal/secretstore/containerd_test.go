package secretstore_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/google/go-containerregistry/pkg/name"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/containerdtest"
	"github.com/bulwark-sec/bulwark/internal/secretstore"
	"github.com/bulwark-sec/bulwark/internal/secretstore/svidtest"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
)

const ctrNS = "bulwark-secrets"

// runFetch starts a container of img running the go-spiffe client with
// the SVID of pod, on the host's network; it returns the container id
// and the directory holding the client's last answer.
func runFetch(t *testing.T, ctx context.Context, c *client.Client, ca *svidtest.CA, img client.Image, pod, url string) (string, string) {
	dir, err := os.MkdirTemp("", "bwsvid")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if _, _, err := ca.WriteCert(dir, "svid", "spiffe://prod.example/ns/shop/pod/"+pod); err != nil {
		t.Fatal(err)
	}
	bundle, _, _, err := ca.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(bundle)
	os.WriteFile(filepath.Join(dir, "ca.pem"), b, 0o644)
	id := "fetch-" + pod
	containerdtest.Run(t, ctx, c, img, id, oci.WithProcessArgs("/bin/fetch", "/svid", url),
		oci.WithHostNamespace(specs.NetworkNamespace),
		oci.WithMounts([]specs.Mount{{Destination: "/svid", Type: "bind", Source: dir, Options: []string{"rbind", "rw"}}}))
	return id, dir
}

// answer waits until the container's client wrote an answer for which
// ok holds, and returns the last answer.
func answer(dir string, ok func(string) bool) string {
	var last string
	for end := time.Now().Add(45 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(dir, "last"))
		if last = string(b); last != "" && ok(last) {
			break
		}
	}
	return last
}

// TestReleaseToContainers runs go-spiffe clients in real containerd
// containers, each fetching a secret from `bulwark server` over mTLS with
// its own X.509-SVID. The server knows each container from its node's
// heartbeat (container id and image digest as containerd reports them):
// the certified, undrifted, granted one in its region gets the secret, and
// sees a rotation on its next fetch without a restart; a container of an
// uncertified image, a drifted one, one on a node in the wrong region and
// one whose application has no grant are refused, each with its reason in
// the audit log.
func TestReleaseToContainers(t *testing.T) {
	c, _ := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), ctrNS)
	bin := containerdtest.BuildStatic(t, "./testdata/fetch")
	certified := containerdtest.Import(t, ctx, c, containerdtest.Image(t, map[string][]byte{"bin/fetch": bin, "variant": []byte("certified"), "svid/": nil}), "registry.example/checkout:1")
	uncertified := containerdtest.Import(t, ctx, c, containerdtest.Image(t, map[string][]byte{"bin/fetch": bin, "variant": []byte("uncertified"), "svid/": nil}), "registry.example/checkout:2")
	other := containerdtest.Import(t, ctx, c, containerdtest.Image(t, map[string][]byte{"bin/fetch": bin, "variant": []byte("analytics"), "svid/": nil}), "registry.example/analytics:1")
	digest := func(ci client.Image, repo string) name.Digest {
		d, err := name.NewDigest(repo + "@" + ci.Target().Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	dir := t.TempDir()
	ca, err := svidtest.New()
	if err != nil {
		t.Fatal(err)
	}
	bundle, cert, key, err := ca.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	cat := filepath.Join(dir, "catalogue.yaml")
	os.WriteFile(cat, []byte(`classes: [{name: pii-eu}]
regulations: [{name: gdpr, classes: [pii-eu], regions: [eu-west-1]}]
applications: [{name: checkout, classes: [pii-eu]}]
nodes: {node-eu: eu-west-1, node-us: us-east-1}
`), 0o600)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	wl := ln.Addr().String()
	ln.Close()
	srv := servertest.Start(t, server.Config{WatchInterval: time.Hour, APILimits: api.Limits{Rate: -1},
		Secrets: server.SecretsConfig{Catalogue: cat, WorkloadListen: wl, WorkloadCert: cert, WorkloadKey: key, WorkloadCA: bundle,
			TrustDomain: "prod.example"}},
		servertest.Image{Digest: digest(certified, "registry.example/checkout"), Tag: "1", Certified: true},
		servertest.Image{Digest: digest(uncertified, "registry.example/checkout"), Tag: "2"},
		servertest.Image{Digest: digest(other, "registry.example/analytics"), Tag: "1", Certified: true})
	admin := func(method, path string, body any) (int, string) { return srv.Call(t, srv.Admin, method, path, body) }
	if code, b := admin("POST", "/api/v1/applications", map[string]any{"name": "checkout", "repositories": []string{"registry.example/checkout"}}); code != 201 {
		t.Fatalf("application: %d %s", code, b)
	}
	pol := secretstore.Policy{SPIFFEIDs: []string{"spiffe://prod.example/ns/shop/**"}, CertifiedUnder: "default", NoDrift: true, RequireGrant: true}
	if code, b := admin("PUT", "/api/v1/secrets/shop%2Fdb", api.SecretRequest{Data: map[string]string{"password": "v1-in-container"},
		Classes: []string{"pii-eu"}, Policy: pol}); code != 201 {
		t.Fatalf("put: %d %s", code, b)
	}

	url := "https://" + wl + secretstore.WorkloadPath + "shop/db"
	running := map[string][]agentproto.Container{}
	dirs := map[string]string{}
	for _, w := range []struct {
		pod, node string
		img       client.Image
	}{{"good", "node-eu", certified}, {"plain", "node-eu", uncertified}, {"drifter", "node-eu", certified},
		{"faraway", "node-us", certified}, {"analytics", "node-eu", other}} {
		id, d := runFetch(t, ctx, c, ca, w.img, w.pod, url)
		dirs[w.pod] = d
		// What the node's agent reports of it: containerd's id and digest, the pod labels.
		running[w.node] = append(running[w.node], agentproto.Container{ID: id, Namespace: ctrNS, Image: w.img.Target().Digest.String(),
			Labels: map[string]string{agentproto.LabelPodNamespace: "shop", agentproto.LabelPodName: w.pod}})
	}
	for node, cs := range running {
		if code, b := admin("POST", "/api/v1/agent/heartbeat", agentproto.Heartbeat{Node: node, Mode: "prevent", State: "enforcing (fanotify)", Containers: cs}); code != 200 {
			t.Fatalf("heartbeat: %d %s", code, b)
		}
	}
	if code, b := admin("POST", "/api/v1/agent/events", agentproto.Batch{Node: "node-eu", Spool: "s1", Events: []agentproto.Event{{
		Seq: 1, Time: time.Now(), Verdict: "refused", Reason: "not-in-image", PID: 42, Path: "/tmp/x", Container: "fetch-drifter",
		Namespace: ctrNS, Image: certified.Target().Digest.String()}}}); code != 200 {
		t.Fatalf("drift event: %d %s", code, b)
	}

	if got := answer(dirs["good"], func(s string) bool { return strings.HasPrefix(s, "200 ") }); !strings.Contains(got, "v1-in-container") {
		t.Fatalf("the certified container: %q", got)
	}
	for pod, want := range map[string]string{"plain": "is not certified", "drifter": "drifted", "faraway": "region us-east-1",
		"analytics": "not granted data class pii-eu"} {
		if got := answer(dirs[pod], func(s string) bool { return strings.Contains(s, want) }); !strings.HasPrefix(got, "403 ") || !strings.Contains(got, want) {
			t.Errorf("%s: %q, want 403 with %q", pod, got, want)
		}
	}
	if code, b := admin("POST", "/api/v1/secrets/shop%2Fdb/rotate", api.SecretValue{Data: map[string]string{"password": "v2-rotated"}}); code != 200 {
		t.Fatalf("rotate: %d %s", code, b)
	}
	if got := answer(dirs["good"], func(s string) bool { return strings.Contains(s, "v2-rotated") }); !strings.Contains(got, `"version":2`) {
		t.Fatalf("after rotation, without a restart: %q", got)
	}
	_, log := admin("GET", "/api/v1/audit?limit=1000", nil)
	for _, want := range []string{"is not certified", "drifted", "region us-east-1", "not granted data class", "secret.release"} {
		if !strings.Contains(log, want) {
			t.Errorf("the audit log has no %q", want)
		}
	}
	if strings.Contains(log, "v1-in-container") || strings.Contains(log, "v2-rotated") {
		t.Fatal("a value in the audit log")
	}
}
