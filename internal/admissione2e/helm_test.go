package admissione2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/k8stest"
	"github.com/bulwark-sec/bulwark/internal/kubeinstall"
	"github.com/bulwark-sec/bulwark/internal/pki"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

const chartDir = "../../deploy/helm/bulwark-admission"

var (
	helmBin   = k8stest.HelmBin
	objectsOf = k8stest.Objects
	dig       = k8stest.Dig
)

func helmTemplate(t *testing.T, values string, extra ...string) (string, error) {
	t.Helper()
	return k8stest.HelmTemplate(t, chartDir, "bulwark-admission", kubeinstall.DefaultNamespace, values, extra...)
}

func b64(t *testing.T, v any) []byte {
	t.Helper()
	s, _ := v.(string)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		t.Fatalf("not base64: %v", v)
	}
	return b
}

// same fails unless the chart's and install's values are present and
// equal.
func same(t *testing.T, what string, chart, install any) {
	t.Helper()
	c, i := fmt.Sprint(chart), fmt.Sprint(install)
	if install == nil || chart == nil || c != i {
		t.Errorf("%s:\n chart   %s\n install %s", what, c, i)
	}
}

// chartValues is a values file for an admission configuration trusting
// pub, with a key under keys/ and a token file.
func chartValues(pub []byte) string {
	indent := func(s string) string { return "      " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n      ") }
	return fmt.Sprintf(`image:
  repository: registry.example/bulwark
  tag: "1"
config:
  name: admission.yaml
  content: |
    trust:
      keys: [keys/release.pub]
    server:
      url: https://bulwark.bulwark-system:8480
      tokenFile: token
  files:
    keys/release.pub: |
%s
  secretFiles:
    token: bwk_secret
`, indent(string(pub)))
}

// The chart renders (real helm), its caBundle verifies its serving
// certificate, the objects match `bulwark admission install`'s where it
// matters (webhook rules, selector, failure policy, timeout, container
// arguments, security context, mounted paths), and the rendering applies
// to a real API server (server-side dry run).
func TestHelmChartMatchesInstall(t *testing.T) {
	helmBin(t)
	_, pub, err := sign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := helmTemplate(t, chartValues(pub))
	if err != nil {
		t.Fatal(err)
	}
	chart := objectsOf(t, rendered)

	// The same configuration as files, through install.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "keys"), 0o755)
	os.WriteFile(filepath.Join(dir, "keys", "release.pub"), pub, 0o600)
	os.WriteFile(filepath.Join(dir, "token"), []byte("bwk_secret"), 0o600)
	os.WriteFile(filepath.Join(dir, "admission.yaml"), []byte("trust:\n  keys: [keys/release.pub]\nserver:\n  url: https://bulwark.bulwark-system:8480\n  tokenFile: token\n"), 0o600)
	cf, err := kubeinstall.CollectConfig(filepath.Join(dir, "admission.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := kubeinstall.Build(kubeinstall.Options{Image: "registry.example/bulwark:1", Config: cf})
	if err != nil {
		t.Fatal(err)
	}
	y, _ := b.YAML()
	inst := objectsOf(t, string(y))

	var chartKeys, instKeys []string
	for k := range chart {
		chartKeys = append(chartKeys, k)
	}
	for k := range inst {
		if k != "Namespace/"+kubeinstall.DefaultNamespace { // helm install --create-namespace
			instKeys = append(instKeys, k)
		}
	}
	slices.Sort(chartKeys)
	slices.Sort(instKeys)
	if !slices.Equal(chartKeys, instKeys) {
		t.Fatalf("chart objects %v\ninstall objects %v", chartKeys, instKeys)
	}

	crt := b64(t, dig(chart["Secret/bulwark-admission-tls"], "data", "tls.crt"))
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		k := kind + "/bulwark-admission"
		ca := b64(t, dig(chart[k], "webhooks", 0, "clientConfig", "caBundle"))
		if err := pki.Verify(ca, crt, "bulwark-admission.bulwark-system.svc"); err != nil {
			t.Errorf("chart %s caBundle: %v", kind, err)
		}
		for _, field := range []string{"name", "rules", "namespaceSelector", "failurePolicy", "timeoutSeconds", "sideEffects", "matchPolicy", "reinvocationPolicy", "admissionReviewVersions"} {
			if field == "reinvocationPolicy" && kind == "ValidatingWebhookConfiguration" {
				continue // mutating only
			}
			same(t, kind+" "+field, dig(chart[k], "webhooks", 0, field), dig(inst[k], "webhooks", 0, field))
		}
		same(t, kind+" service", dig(chart[k], "webhooks", 0, "clientConfig", "service"), dig(inst[k], "webhooks", 0, "clientConfig", "service"))
	}
	dep := "Deployment/bulwark-admission"
	for _, path := range [][]any{
		{"spec", "template", "spec", "containers", 0, "args"},
		{"spec", "template", "spec", "containers", 0, "image"},
		{"spec", "template", "spec", "containers", 0, "securityContext"},
		{"spec", "template", "spec", "containers", 0, "volumeMounts"},
		{"spec", "template", "spec", "containers", 0, "ports"},
		{"spec", "template", "spec", "securityContext"},
		{"spec", "template", "spec", "automountServiceAccountToken"},
		{"spec", "template", "spec", "volumes"},
		{"spec", "replicas"},
	} {
		same(t, fmt.Sprintf("Deployment %v", path), dig(chart[dep], path...), dig(inst[dep], path...))
	}
	for _, k := range []string{"ConfigMap/bulwark-admission-config", "Secret/bulwark-admission-files"} {
		same(t, k+" data", dig(chart[k], "data"), dig(inst[k], "data"))
	}

	c := k8stest.Start(t)
	c.MustKubectl("create", "namespace", kubeinstall.DefaultNamespace)
	out, err := c.KubectlStdin(rendered, "apply", "--dry-run=server", "-f", "-")
	if err != nil {
		t.Fatalf("chart does not apply: %v", err)
	}
	if !strings.Contains(out, "deployment.apps/bulwark-admission created (server dry run)") {
		t.Errorf("dry run output:\n%s", out)
	}
}

// The chart's other certificate modes and its refusals.
func TestHelmChartValues(t *testing.T) {
	helmBin(t)
	_, pub, err := sign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	base := chartValues(pub)

	// A provided certificate lands as given.
	ca, _ := pki.NewCA("mine", 24*time.Hour)
	pair, _ := ca.Issue(pki.Request{CommonName: "bulwark-admission.bulwark-system.svc", DNSNames: []string{"bulwark-admission.bulwark-system.svc"}, Server: true, ValidFor: 24 * time.Hour})
	ind := func(b []byte) string {
		return "    " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    ")
	}
	provided := base + fmt.Sprintf("tls:\n  mode: provided\n  cert: |\n%s\n  key: |\n%s\n  caBundle: |\n%s\n", ind(pair.CertPEM), ind(pair.KeyPEM), ind(ca.CertPEM))
	out, err := helmTemplate(t, provided)
	if err != nil {
		t.Fatal(err)
	}
	objs := objectsOf(t, out)
	if got := b64(t, dig(objs["Secret/bulwark-admission-tls"], "data", "tls.crt")); !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(pair.CertPEM)) {
		t.Error("provided certificate not used")
	}
	if got := b64(t, dig(objs["ValidatingWebhookConfiguration/bulwark-admission"], "webhooks", 0, "clientConfig", "caBundle")); !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(ca.CertPEM)) {
		t.Error("provided caBundle not used")
	}

	// An existing Secret: no Secret rendered, the Deployment mounts it.
	out, err = helmTemplate(t, base+"tls:\n  mode: existingSecret\n  existingSecret: my-tls\n  caBundle: |\n"+ind(ca.CertPEM)+"\n", "--set", "excludeNamespaces={monitoring}")
	if err != nil {
		t.Fatal(err)
	}
	objs = objectsOf(t, out)
	if _, ok := objs["Secret/bulwark-admission-tls"]; ok {
		t.Error("existingSecret mode rendered a TLS Secret")
	}
	if got := dig(objs["Deployment/bulwark-admission"], "spec", "template", "spec", "volumes", 1, "secret", "secretName"); got != "my-tls" {
		t.Errorf("tls volume %v", got)
	}
	if got := fmt.Sprint(dig(objs["MutatingWebhookConfiguration/bulwark-admission"], "webhooks", 0, "namespaceSelector", "matchExpressions", 0, "values")); got != "[bulwark-system kube-system monitoring]" {
		t.Errorf("excluded namespaces %s", got)
	}

	for _, tc := range []struct {
		values string
		args   []string
		want   string
	}{
		{base, []string{"--set", "image.repository="}, "image.repository is required"},
		{base, []string{"--set", "config.content="}, "config.content is required"},
		{base, []string{"--set", "tls.mode=selfie"}, `tls.mode "selfie"`},
		{base, []string{"--set", "tls.mode=existingSecret"}, "tls.existingSecret is required"},
		{base, []string{"--set", "timeoutSeconds=40"}, "timeoutSeconds 40"},
	} {
		if _, err := helmTemplate(t, tc.values, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("helm template %v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
