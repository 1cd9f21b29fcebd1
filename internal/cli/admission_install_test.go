package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/k8stest"
	"github.com/bulwark-sec/bulwark/internal/kubeinstall"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

// runInstall runs `bulwark admission install args...` in process; a
// non-zero exit is an error holding stderr.
func runInstall(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	stdout, stderr, code := run(t, append([]string{"admission", "install"}, args...)...)
	if code != ExitOK {
		return stdout, stderr, fmt.Errorf("exit %d: %s", code, stderr)
	}
	return stdout, stderr, nil
}

// installConfig writes an admission configuration trusting a fresh key.
func installConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	_, pub, err := sign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "cosign.pub"), pub, 0o600)
	file := filepath.Join(dir, "admission.yaml")
	if err := os.WriteFile(file, []byte("trust:\n  keys: [cosign.pub]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestAdmissionInstallPrints(t *testing.T) {
	file := installConfig(t)
	out, _, err := runInstall(t, "--admission-config", file, "--image", "registry.example/bulwark:1", "--namespace", "guard")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: Namespace", "name: guard", "kind: ValidatingWebhookConfiguration", "kind: MutatingWebhookConfiguration",
		"caBundle: ", "image: registry.example/bulwark:1", "cosign.pub: |", "failurePolicy: Fail", "timeoutSeconds: 5"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--image", "x"}, "--admission-config is required"},
		{[]string{"--admission-config", file}, "--image is required"},
		{[]string{"--admission-config", file, "--image", "x", "--dry-run", "server"}, "--dry-run applies to --apply only"},
		{[]string{"--admission-config", file, "--image", "x", "--apply", "--dry-run", "yes"}, `--dry-run "yes"`},
		{[]string{"--admission-config", filepath.Join(t.TempDir(), "none.yaml"), "--image", "x"}, "reading admission config"},
		{[]string{"--admission-config", file, "--image", "x", "--timeout-seconds", "60"}, "1 to 30 seconds"},
		{[]string{"--admission-config", file, "--image", "x", "--apply", "--kubectl", filepath.Join(t.TempDir(), "no-kubectl")}, "applying with"},
	} {
		if _, _, err := runInstall(t, tc.args...); err == nil || !strings.Contains(err.Error(), "exit 2: bulwark: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("install %v: %v, want exit 2 and %q", tc.args, err, tc.want)
		}
	}
}

// The printed objects apply cleanly to a real API server (server-side dry
// run, then for real), and once applied the webhooks are live: with no
// webhook pod running (no kubelet here) a pod create in an admitted
// namespace fails closed, naming Bulwark's webhook, while kube-system and
// the webhook's own namespace stay exempt.
func TestAdmissionInstallApplyRealCluster(t *testing.T) {
	c := k8stest.Start(t)
	file := installConfig(t)
	base := []string{"--admission-config", file, "--image", "registry.example/bulwark:1", "--apply",
		"--kubectl", c.KubectlBin(), "--kubeconfig", c.Kubeconfig}

	// A server-side dry run needs the namespace to exist.
	c.MustKubectl("create", "namespace", kubeinstall.DefaultNamespace)
	out, stderr, err := runInstall(t, append(base, "--dry-run", "server")...)
	if err != nil {
		t.Fatalf("server dry run: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "validatingwebhookconfiguration.admissionregistration.k8s.io/bulwark-admission created (server dry run)") {
		t.Errorf("dry run output:\n%s", out)
	}
	if _, err := c.Kubectl("get", "validatingwebhookconfiguration", "bulwark-admission"); err == nil {
		t.Fatal("a dry run created the webhook configuration")
	}

	if _, stderr, err = runInstall(t, base...); err != nil {
		t.Fatalf("apply: %v\n%s", err, stderr)
	}
	for _, obj := range []string{"deployment/bulwark-admission", "service/bulwark-admission", "secret/bulwark-admission-tls",
		"configmap/bulwark-admission-config", "serviceaccount/bulwark-admission", "poddisruptionbudget/bulwark-admission"} {
		c.MustKubectl("get", "-n", kubeinstall.DefaultNamespace, obj)
	}
	c.MustKubectl("get", "mutatingwebhookconfiguration", "bulwark-admission")

	pod := func(ns string) string {
		return "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: " + ns + "}\nspec:\n  containers: [{name: c, image: example.com/x:1}]\n"
	}
	// The configuration takes effect asynchronously.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = c.KubectlStdin(pod("default"), "create", "-f", "-")
		if err != nil || time.Now().After(deadline) {
			break
		}
		c.MustKubectl("delete", "pod", "p", "-n", "default", "--wait=false")
		time.Sleep(200 * time.Millisecond)
	}
	var ke *k8stest.KubectlError
	if !errors.As(err, &ke) || !strings.Contains(ke.Stderr, kubeinstall.MutatingWebhookName) {
		t.Fatalf("pod create in default with the webhook down: %v", err)
	}
	for _, ns := range []string{"kube-system", kubeinstall.DefaultNamespace} {
		if _, err := c.KubectlStdin(pod(ns), "create", "-f", "-"); err != nil {
			t.Errorf("pod create in exempt namespace %s: %v", ns, err)
		}
	}
}
