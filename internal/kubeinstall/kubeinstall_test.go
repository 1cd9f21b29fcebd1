package kubeinstall

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/bulwark-sec/bulwark/internal/k8stest"
	"github.com/bulwark-sec/bulwark/internal/pki"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

// writeConfig writes an admission configuration naming a trust policy
// (with a key in keys/) and a token file, and returns its path.
func writeConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	_, pub, err := sign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"keys/release.pub": string(pub),
		"trust.yaml":       "- repositories: [\"**\"]\n  keys: [keys/release.pub]\n",
		"token":            "bwk_secret\n",
		"admission.yaml": `trust:
  policy: trust.yaml
server:
  url: https://bulwark.bulwark-system:8480
  tokenFile: token
`,
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "admission.yaml")
}

var docSep = regexp.MustCompile(`(?m)^---$`)

// docs parses a multi-document YAML stream into maps.
func docs(t *testing.T, y []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, d := range docSep.Split(string(y), -1) {
		if strings.TrimSpace(d) == "" {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			t.Fatalf("parsing %s: %v", d, err)
		}
		out = append(out, m)
	}
	return out
}

func find(t *testing.T, ds []map[string]any, kind, name string) map[string]any {
	t.Helper()
	for _, d := range ds {
		if d["kind"] == kind && d["metadata"].(map[string]any)["name"] == name {
			return d
		}
	}
	t.Fatalf("no %s %s in the output", kind, name)
	return nil
}

var dig = k8stest.Dig

func b64(t *testing.T, v any) []byte {
	t.Helper()
	s, _ := v.(string)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		t.Fatalf("not base64: %v", v)
	}
	return b
}

// The printed caBundle verifies the printed serving certificate for the
// Service's DNS name, and the certificate loads with its key.
func TestCABundleVerifiesServingCert(t *testing.T) {
	cf, err := CollectConfig(writeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(Options{Image: "registry.example/bulwark:1", Config: cf, Namespace: "guard", Name: "hook"})
	if err != nil {
		t.Fatal(err)
	}
	y, err := b.YAML()
	if err != nil {
		t.Fatal(err)
	}
	ds := docs(t, y)
	sec := find(t, ds, "Secret", "hook-tls")
	crt, key := b64(t, dig(sec, "data", "tls.crt")), b64(t, dig(sec, "data", "tls.key"))
	if _, err := tls.X509KeyPair(crt, key); err != nil {
		t.Fatalf("serving pair does not load: %v", err)
	}
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		wh := find(t, ds, kind, "hook")
		ca := b64(t, dig(wh, "webhooks", 0, "clientConfig", "caBundle"))
		host := fmt.Sprintf("%s.%s.svc", dig(wh, "webhooks", 0, "clientConfig", "service", "name"), dig(wh, "webhooks", 0, "clientConfig", "service", "namespace"))
		if host != "hook.guard.svc" {
			t.Errorf("%s calls %s", kind, host)
		}
		if err := pki.Verify(ca, crt, host); err != nil {
			t.Errorf("%s caBundle does not verify the serving certificate: %v", kind, err)
		}
	}
	// Another install makes another CA: the bundles are not interchangeable.
	b2, _ := Build(Options{Image: "x", Config: cf, Namespace: "guard", Name: "hook"})
	if err := pki.Verify(b2.CAPEM, crt, "hook.guard.svc"); err == nil {
		t.Error("a second install's CA verified the first install's certificate")
	}
}

func TestObjects(t *testing.T) {
	cf, err := CollectConfig(writeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(Options{Image: "registry.example/bulwark:1", Config: cf, TimeoutSeconds: 3, ExcludeNamespaces: []string{"monitoring"}})
	if err != nil {
		t.Fatal(err)
	}
	y, _ := b.YAML()
	ds := docs(t, y)
	var kinds []string
	for _, d := range ds {
		kinds = append(kinds, d["kind"].(string))
		if _, ok := d["status"]; ok {
			t.Errorf("%s carries a status", d["kind"])
		}
	}
	want := []string{"Namespace", "ServiceAccount", "ConfigMap", "Secret", "Secret", "Deployment", "PodDisruptionBudget", "Service", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
	if !slices.Equal(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}

	// Configuration files keep their relative paths; the token is a Secret.
	cm := find(t, ds, "ConfigMap", "bulwark-admission-config")
	for _, k := range []string{"admission.yaml", "trust.yaml", "keys_release.pub"} {
		if dig(cm, "data", k) == nil {
			t.Errorf("ConfigMap lacks %s", k)
		}
	}
	if dig(cm, "data", "token") != nil {
		t.Error("the server token is in the ConfigMap")
	}
	files := find(t, ds, "Secret", "bulwark-admission-files")
	if got := string(b64(t, dig(files, "data", "token"))); got != "bwk_secret\n" {
		t.Errorf("token secret %q", got)
	}
	dep := find(t, ds, "Deployment", "bulwark-admission")
	pod := dig(dep, "spec", "template", "spec")
	args := fmt.Sprint(dig(pod, "containers", 0, "args"))
	for _, a := range []string{"admission serve", "--admission-config " + ConfigDir + "/admission.yaml", "--tls-cert " + TLSDir + "/tls.crt", "--listen :8443"} {
		if !strings.Contains(args, a) {
			t.Errorf("container args %s lack %q", args, a)
		}
	}
	items := fmt.Sprint(dig(pod, "volumes", 0, "projected", "sources"))
	if !strings.Contains(items, "path:keys/release.pub") || !strings.Contains(items, "path:token") {
		t.Errorf("projected volume does not restore the paths: %s", items)
	}
	if dig(pod, "automountServiceAccountToken") != false || dig(pod, "containers", 0, "securityContext", "readOnlyRootFilesystem") != true ||
		dig(pod, "securityContext", "runAsNonRoot") != true || fmt.Sprint(dig(pod, "containers", 0, "securityContext", "capabilities", "drop")) != "[ALL]" {
		t.Errorf("webhook pod is not least-privilege: %v", pod)
	}

	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		wh := dig(find(t, ds, kind, "bulwark-admission"), "webhooks", 0)
		if dig(wh, "failurePolicy") != "Fail" || dig(wh, "timeoutSeconds") != float64(3) || dig(wh, "sideEffects") != "None" {
			t.Errorf("%s: failurePolicy %v timeoutSeconds %v sideEffects %v", kind, dig(wh, "failurePolicy"), dig(wh, "timeoutSeconds"), dig(wh, "sideEffects"))
		}
		if got := fmt.Sprint(dig(wh, "namespaceSelector", "matchExpressions", 0)); got != "map[key:kubernetes.io/metadata.name operator:NotIn values:[bulwark-system kube-system monitoring]]" {
			t.Errorf("%s namespaceSelector %s", kind, got)
		}
		var resources []string
		for i := range 3 {
			for _, r := range dig(wh, "rules", i, "resources").([]any) {
				resources = append(resources, r.(string))
			}
		}
		slices.Sort(resources)
		if want := []string{"cronjobs", "daemonsets", "deployments", "jobs", "pods", "pods/ephemeralcontainers", "replicasets", "statefulsets"}; !slices.Equal(resources, want) {
			t.Errorf("%s resources %v, want %v", kind, resources, want)
		}
	}
}

func TestBadOptions(t *testing.T) {
	cf, err := CollectConfig(writeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Config: cf}, "no container image"},
		{Options{Image: "x"}, "no admission configuration"},
		{Options{Image: "x", Config: cf, Namespace: "Bad_NS"}, `namespace "Bad_NS" is not a DNS label`},
		{Options{Image: "x", Config: cf, TimeoutSeconds: 31}, "1 to 30 seconds"},
		{Options{Image: "x", Config: cf, CertValidity: time.Minute}, "at least 1h"},
	} {
		if _, err := Build(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Build(%+v): %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestCollectConfigRefuses(t *testing.T) {
	file := writeConfig(t)
	dir := filepath.Dir(file)
	// An inline token would land in a ConfigMap.
	os.WriteFile(filepath.Join(dir, "inline.yaml"), []byte("trust:\n  policy: trust.yaml\nserver:\n  url: https://x\n  token: bwk_x\n"), 0o600)
	if _, err := CollectConfig(filepath.Join(dir, "inline.yaml")); err == nil || !strings.Contains(err.Error(), "server.token is inline") {
		t.Errorf("inline token: %v", err)
	}
	// A file outside the configuration's directory cannot be shipped.
	sub := filepath.Join(dir, "sub")
	os.MkdirAll(sub, 0o755)
	os.WriteFile(filepath.Join(sub, "admission.yaml"), []byte("trust:\n  policy: ../trust.yaml\n"), 0o600)
	if _, err := CollectConfig(filepath.Join(sub, "admission.yaml")); err == nil || !strings.Contains(err.Error(), "outside the configuration's directory") {
		t.Errorf("file outside: %v", err)
	}
	// A broken configuration is reported as serve would.
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("trust:\n  policy: trust.yaml\nnope: 1\n"), 0o600)
	if _, err := CollectConfig(filepath.Join(dir, "bad.yaml")); err == nil || !strings.Contains(err.Error(), "bad.yaml:3") {
		t.Errorf("bad config: %v", err)
	}
}
