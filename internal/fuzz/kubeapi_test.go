package fuzz_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/cli"
	"github.com/bulwark-sec/bulwark/internal/fuzz"
	"github.com/bulwark-sec/bulwark/internal/k8stest"
)

// kubeAWSKey is an AWS-shaped key id planted in a ConfigMap: kube-apiserver
// returns it to any reader, and the campaign must say so.
const kubeAWSKey = "AKIAQ3EGRT5ZWXYZ7QPL"

// kubeReadRole may get and list everything and nothing else.
const kubeReadRole = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: fuzz-read}
rules:
- apiGroups: ["*"]
  resources: ["*"]
  verbs: [get, list]
- nonResourceURLs: ["*"]
  verbs: [get]
`

// kubeReads selects kube-apiserver's read operations (list*, read*, the
// get*APIResources discovery calls) and leaves out its watches (watch*,
// which stream until their timeout) and connect* (exec, proxy).
var kubeReads = regexp.MustCompile(`^GET \S+ (list|read|get)[A-Z]`)

// TestFuzzKubeAPIServer fuzzes the real kube-apiserver of the admission
// e2e setup from the OpenAPI v3 documents it serves (core v1 and apps/v1),
// read operations only, 1,500 requests (200 of them through the CLI), over TLS with a service-account
// bearer token bound to a get-and-list role (so that even a selection
// mistake could not change the cluster). kube-apiserver's documents
// require no security, so every operation is taken as secured (Secured):
// each is replayed anonymously (403) and with a garbage token (401). The campaign must send every request and
// get an answer to each; the findings are kube-apiserver's (docs/fuzz.md
// records them) and must be well formed; the planted key must be found.
func TestFuzzKubeAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	c := k8stest.Start(t)
	c.MustKubectl("create", "serviceaccount", "fuzz", "-n", "default")
	// A read-only role of its own: the built-in view role is aggregated
	// by kube-controller-manager, which this control plane does not run.
	if _, err := c.KubectlStdin(kubeReadRole, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	c.MustKubectl("create", "clusterrolebinding", "fuzz-read", "--clusterrole=fuzz-read", "--serviceaccount=default:fuzz")
	c.MustKubectl("create", "configmap", "app-settings", "-n", "default", "--from-literal=aws_access_key_id="+kubeAWSKey)
	token := strings.TrimSpace(c.MustKubectl("create", "token", "fuzz", "-n", "default", "--duration=1h"))
	auth := []fuzz.Pair{{Name: "Authorization", Value: "Bearer " + token}}

	client, err := fuzz.NewClient(fuzz.TLS{CA: c.CAPEM})
	if err != nil {
		t.Fatal(err)
	}
	docs := fuzz.DocumentClient(client, c.Server, auth)
	index := kubeOpenAPIIndex(t, docs, c.Server)
	started := time.Now()
	total := 0
	for _, gv := range []struct {
		name   string
		budget int
		pins   map[string]string
	}{
		{"api/v1", 800, map[string]string{"namespace": "default", "watch": "false", "follow": "false"}},
		{"apis/apps/v1", 500, map[string]string{"namespace": "default", "watch": "false"}},
	} {
		rel, ok := index[gv.name]
		if !ok {
			t.Fatalf("/openapi/v3 lists no %s document: %v", gv.name, index)
		}
		spec, err := fuzz.Load(t.Context(), c.Server+rel, docs)
		if err != nil {
			t.Fatalf("reading the %s document: %v", gv.name, err)
		}
		res, err := fuzz.Run(t.Context(), spec, fuzz.Options{
			Target: c.Server, Auth: auth, Client: client, Seed: 1,
			MaxRequests: gv.budget, Operations: kubeReads, Params: gv.pins, Secured: true,
			Slow: 10 * time.Second, Timeout: 20 * time.Second, Shrink: 16,
		})
		if err != nil {
			t.Fatalf("fuzzing %s: %v", gv.name, err)
		}
		total += res.Requests
		t.Logf("%s: %d requests to %d read operations (of %d) in %.1f s, stopped: %s; statuses %v; %d findings",
			gv.name, res.Requests, res.Operations, len(spec.Operations()), res.Seconds, res.Stop, res.Statuses, len(res.Findings))
		checkKubeCampaign(t, gv.name, gv.budget, res)
		if gv.name == "api/v1" {
			var leak bool
			for _, f := range res.Findings {
				leak = leak || (f.Rule == fuzz.RuleLeakedSecret && strings.Contains(f.Operation, "ConfigMap"))
			}
			if !leak {
				t.Errorf("no leaked-secret finding on the ConfigMap reads; the planted key %s…  went unnoticed", kubeAWSKey[:4])
			}
		}
	}
	total += kubeCLI(t, c, index["api/v1"], token)
	t.Logf("kube-apiserver %s: %d requests in %.1f s", k8stest.Version, total, time.Since(started).Seconds())
}

// kubeCLI runs the same campaign as a pipeline would, through `bulwark
// fuzz` (--cacert, the token from $BULWARK_FUZZ_AUTH_1, --operations,
// --param, --secured), 200 requests, and returns the requests sent.
func kubeCLI(t *testing.T, c *k8stest.Cluster, doc, token string) int {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, c.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(fuzz.AuthEnv+"1", "Bearer "+token)
	var stdout, stderr bytes.Buffer
	code := cli.Execute(t.Context(), []string{"fuzz", "--openapi", c.Server + doc, "--target", c.Server, "--cacert", ca,
		"--auth", "Authorization", "--operations", kubeReads.String(), "--param", "namespace=default", "--param", "watch=false",
		"--param", "follow=false", "--secured", "--max-requests", "200", "--seed", "2", "--format", "json"}, &stdout, &stderr)
	var res fuzz.Result
	if code != cli.ExitFindings || json.Unmarshal(stdout.Bytes(), &res) != nil {
		t.Fatalf("bulwark fuzz on kube-apiserver: exit %d (want 1: findings), stderr %s", code, stderr.String())
	}
	t.Logf("bulwark fuzz (CLI): %d requests in %.1f s, statuses %v, %d findings", res.Requests, res.Seconds, res.Statuses, len(res.Findings))
	checkKubeCampaign(t, "cli api/v1", 200, &res)
	if strings.Contains(stdout.String()+stderr.String(), token) {
		t.Error("the CLI printed the token")
	}
	// A finding's curl line reproduces it, TLS included.
	for _, f := range res.Findings {
		if !strings.Contains(f.Curl, "curl -sS -i --cacert "+ca+" -X GET") {
			t.Fatalf("curl line without the CA: %s", f.Curl)
		}
		if f.Rule == fuzz.RuleLeakedSecret {
			replayKubeCurl(t, f.Curl, token)
			break
		}
	}
	return res.Requests
}

// checkKubeCampaign asserts that every request was sent and answered and
// that the findings are well formed.
func checkKubeCampaign(t *testing.T, name string, budget int, res *fuzz.Result) {
	t.Helper()
	if res.Requests != budget || res.Stop != "max-requests" {
		t.Errorf("%s: %d requests, stopped by %s; want the whole budget of %d", name, res.Requests, res.Stop, budget)
	}
	if res.TransportErrors != 0 {
		t.Errorf("%s: %d requests got no answer (transport errors)", name, res.TransportErrors)
	}
	answered := 0
	for _, n := range res.Statuses {
		answered += n
	}
	if answered != res.Requests || res.Statuses[http.StatusOK] == 0 {
		t.Errorf("%s: statuses %v for %d requests; want an answer to each, 200s among them", name, res.Statuses, res.Requests)
	}
	for _, s := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		if res.Statuses[s] == 0 {
			t.Errorf("%s: no %d, although every operation was replayed without and with garbage credentials: statuses %v", name, s, res.Statuses)
		}
	}
	for _, f := range res.Findings {
		t.Logf("  %s %s %s: %s", f.Severity, f.Rule, f.Operation, f.Message)
		if f.Rule == fuzz.RuleAuthBypass {
			t.Errorf("%s: auth-bypass on %s: %s (the garbage token or no credentials were accepted)", name, f.Operation, f.Message)
		}
		if f.Rule == "" || f.Severity == "" || f.Operation == "" || f.Message == "" || f.Request.Method != http.MethodGet ||
			!strings.HasPrefix(f.Curl, "curl -sS -i ") || !strings.Contains(f.Curl, " -X GET '"+res.Target) {
			t.Errorf("%s: malformed finding %+v", name, f)
		}
		if strings.Contains(f.Curl, "Bearer ey") || strings.Contains(f.Message, kubeAWSKey) {
			t.Errorf("%s: a finding prints a credential: %+v", name, f)
		}
	}
}

// kubeOpenAPIIndex reads /openapi/v3: group-version -> the document's
// server-relative URL.
func kubeOpenAPIIndex(t *testing.T, client *http.Client, server string) map[string]string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, server+"/openapi/v3", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi/v3: %s %v: %.200s", resp.Status, err, b)
	}
	var index struct {
		Paths map[string]struct {
			URL string `json:"serverRelativeURL"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(b, &index); err != nil {
		t.Fatalf("decoding /openapi/v3: %v", err)
	}
	out := map[string]string{}
	for gv, p := range index.Paths {
		out[gv] = p.URL
	}
	if len(out) == 0 {
		t.Fatalf("/openapi/v3 lists no documents: %.200s", b)
	}
	return out
}

// replayKubeCurl runs a leaked-secret finding's curl line with sh and the
// installed curl, the token in $BULWARK_FUZZ_AUTH_1, and wants the key in
// the answer.
func replayKubeCurl(t *testing.T, line, token string) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Log("curl not installed; the curl line is not replayed")
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Env = append(os.Environ(), fuzz.AuthEnv+"1=Bearer "+token)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sh -c %s: %v", line, err)
	}
	if first, _, _ := strings.Cut(string(out), "\n"); !strings.Contains(first, " 200") || !strings.Contains(string(out), kubeAWSKey) {
		t.Fatalf("replaying %s: %q, without the key", line, first)
	}
}
