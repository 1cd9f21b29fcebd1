package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/governance"
	"github.com/bulwark-sec/bulwark/internal/secretstore"
	"github.com/bulwark-sec/bulwark/internal/secretstore/svidtest"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
)

const catalogueYAML = `classes:
  - name: pii-eu
regulations:
  - name: gdpr
    classes: [pii-eu]
    regions: [eu-west-1]
stores:
  - name: customers-db
    address: 10.1.0.5:5432
    classes: [pii-eu]
applications:
  - name: checkout
    classes: [pii-eu]
nodes:
  node-eu: eu-west-1
  node-us: us-east-1
`

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type apiCall struct {
	t     *testing.T
	srv   *servertest.Server
	token string
}

func (c apiCall) do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	code, b := c.srv.Call(c.t, c.token, method, path, body)
	return code, []byte(b)
}

func digest(t *testing.T, repo string, b byte) name.Digest {
	d, err := name.NewDigest(fmt.Sprintf("%s@sha256:%064x", repo, b))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSecretsAndGovernanceInTheServer runs the secret store and
// governance inside `bulwark server`: secrets written through the admin
// API, released over mTLS to a workload the agent reported on a certified
// digest (also through Vault's KV v2 path), refused with a reason to one
// on an uncertified digest or in the wrong region, rotated in place; flows
// reported by the agent land in the governance report, and an ungranted
// service's access raises an alert (audited, notified).
func TestSecretsAndGovernanceInTheServer(t *testing.T) {
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
	os.WriteFile(cat, []byte(catalogueYAML), 0o600)
	good, plain := digest(t, "registry.example/checkout", 1), digest(t, "registry.example/analytics", 2)
	wl := freeAddr(t)
	srv := servertest.Start(t, server.Config{WatchInterval: time.Hour, APILimits: api.Limits{Rate: -1},
		Secrets: server.SecretsConfig{Catalogue: cat, WorkloadListen: wl, WorkloadCert: cert, WorkloadKey: key, WorkloadCA: bundle,
			TrustDomain: "prod.example"}},
		servertest.Image{Digest: good, Tag: "1", Certified: true}, servertest.Image{Digest: plain, Tag: "1"})
	admin := apiCall{t, srv, srv.Admin}

	if code, b := admin.do("POST", "/api/v1/applications", map[string]any{"name": "checkout", "repositories": []string{"registry.example/checkout"}}); code != 201 {
		t.Fatalf("application: %d %s", code, b)
	}
	if code, b := admin.do("POST", "/api/v1/webhooks", map[string]any{"name": "alerts", "url": "https://alerts.example/hook", "secret": "whsec-0123456789abcdef", "events": []string{"governance.violation"}}); code != 201 {
		t.Fatalf("webhook: %d %s", code, b)
	}
	pod := func(id string, d name.Digest, p string) agentproto.Container {
		return agentproto.Container{ID: id, Namespace: "k8s.io", Image: d.DigestStr(), Labels: map[string]string{
			agentproto.LabelPodNamespace: "shop", agentproto.LabelPodName: p}}
	}
	for node, cs := range map[string][]agentproto.Container{
		"node-eu": {pod("c-good", good, "good"), pod("c-plain", plain, "plain")},
		"node-us": {pod("c-us", good, "faraway")},
	} {
		if code, b := admin.do("POST", "/api/v1/agent/heartbeat", agentproto.Heartbeat{Node: node, Mode: "prevent", State: "enforcing (fanotify)", Containers: cs}); code != 200 {
			t.Fatalf("heartbeat: %d %s", code, b)
		}
	}
	secret := api.SecretRequest{Data: map[string]string{"password": "v1-hunter2"}, Classes: []string{"pii-eu"},
		Policy: secretstore.Policy{SPIFFEIDs: []string{"spiffe://prod.example/ns/shop/**"}, CertifiedUnder: "default", RequireGrant: true}}
	if code, b := admin.do("PUT", "/api/v1/secrets/shop%2Fdb", secret); code != 201 || bytes.Contains(b, []byte("hunter2")) {
		t.Fatalf("put: %d %s", code, b)
	}
	if code, b := admin.do("PUT", "/api/v1/secrets/..%2Fetc", secret); code != 400 {
		t.Fatalf("path traversal: %d %s", code, b)
	}
	viewer := apiCall{t, srv, srv.Viewer}
	if code, _ := viewer.do("PUT", "/api/v1/secrets/x", secret); code != 403 {
		t.Fatalf("viewer writes a secret: %d", code)
	}

	fetch := func(pod, path string) (int, string) {
		c, err := ca.Issue("spiffe://prod.example/ns/shop/pod/" + pod)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := ca.Client(&c).Get("https://" + wl + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var code int
	var body string
	for end := time.Now().Add(45 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if code, body = fetch("good", secretstore.WorkloadPath+"shop/db"); code == 200 {
			break
		}
	}
	if code != 200 || !strings.Contains(body, "v1-hunter2") {
		t.Fatalf("certified workload: %d %s", code, body)
	}
	if code, body := fetch("good", secretstore.VaultKVPath+"shop/db"); code != 200 || !strings.Contains(body, `"password":"v1-hunter2"`) {
		t.Fatalf("Vault KV v2 path: %d %s", code, body)
	}
	for pod, want := range map[string]string{"plain": "not certified", "faraway": "region us-east-1", "ghost": "knows no running workload"} {
		if code, body := fetch(pod, secretstore.WorkloadPath+"shop/db"); code != 403 || !strings.Contains(body, want) {
			t.Errorf("%s: %d %s, want 403 with %q", pod, code, body, want)
		}
	}
	if code, b := admin.do("POST", "/api/v1/secrets/shop%2Fdb/rotate", api.SecretValue{Data: map[string]string{"password": "v2-correct-horse"}}); code != 200 {
		t.Fatalf("rotate: %d %s", code, b)
	}
	if code, body := fetch("good", secretstore.WorkloadPath+"shop/db"); code != 200 || !strings.Contains(body, "v2-correct-horse") || !strings.Contains(body, `"version":2`) {
		t.Fatalf("after rotation: %d %s", code, body)
	}
	code, b := admin.do("GET", "/api/v1/secrets", nil)
	if code != 200 || !strings.Contains(string(b), `"shop/db"`) || strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "horse") {
		t.Fatalf("list: %d %s", code, b)
	}

	// Governance: the certified checkout reaches its database (granted);
	// the analytics container (no owner application) does too: alert.
	now := time.Now().UTC()
	batch := governance.FlowBatch{Node: "node-eu", Flows: []governance.FlowReport{
		{Container: "c-good", Image: good.DigestStr(), Destination: "10.1.0.5:5432", Count: 4, First: now, Last: now},
		// The agent's batch claims the certified checkout image for c-plain:
		// the server attributes it by its own view (the heartbeat) instead.
		{Container: "c-plain", Image: good.DigestStr(), Destination: "10.1.0.5:5432", Count: 1, First: now, Last: now},
		{Container: "c-plain", Image: plain.DigestStr(), Destination: "1.1.1.1:443", Count: 1, First: now, Last: now},
	}}
	code, b = admin.do("POST", "/api/v1/governance/flows", batch)
	var rec governance.Recorded
	json.Unmarshal(b, &rec)
	if code != 200 || rec.Matched != 2 || rec.Alerts != 1 || len(rec.Violations) != 1 || rec.Violations[0].Kind != governance.Ungranted {
		t.Fatalf("flows: %d %s", code, b)
	}
	// The same violation again is not alerted twice.
	if _, b = admin.do("POST", "/api/v1/governance/flows", batch); !strings.Contains(string(b), `"alerts": 0`) {
		t.Fatalf("second batch: %s", b)
	}
	code, b = viewer.do("GET", "/api/v1/governance/report?regulation=gdpr", nil)
	var rep governance.Report
	json.Unmarshal(b, &rep)
	if code != 200 || len(rep.Sections) != 1 || len(rep.Sections[0].Observed) != 2 || len(rep.Violations) != 1 ||
		rep.Sections[0].Secrets[0] != "shop/db" || fmt.Sprint(rep.Sections[0].SecretsReleasedTo["shop/db"]) != "[checkout]" {
		t.Fatalf("report: %d %s", code, b)
	}
	if code, b := viewer.do("GET", "/api/v1/governance/report?format=csv", nil); code != 200 || !strings.Contains(string(b), "customers-db,checkout,eu-west-1,observed,8") {
		t.Fatalf("csv: %d %s", code, b)
	}
	if code, _ := viewer.do("GET", "/api/v1/governance/report?regulation=sox", nil); code != 400 {
		t.Fatalf("unknown regulation: %d", code)
	}

	// The audit log: every refusal with its reason, the alert, no value.
	_, b = admin.do("GET", "/api/v1/audit?limit=1000", nil)
	log := string(b)
	for _, want := range []string{"secret.put", "secret.rotate", "secret.release", "secret.refuse", "not certified",
		"region us-east-1", "governance.flows", "governance.violation"} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %q", want)
		}
	}
	if strings.Contains(log, "hunter2") || strings.Contains(log, "horse") {
		t.Fatal("a secret value is in the audit log")
	}
	if code, _ := admin.do("DELETE", "/api/v1/secrets/shop%2Fdb", nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code, _ := fetch("good", secretstore.WorkloadPath+"shop/db"); code != 404 {
		t.Fatalf("a deleted secret: %d", code)
	}
}
