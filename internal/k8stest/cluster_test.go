package k8stest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The control plane comes up, kubectl talks to it as admin, and nothing
// is left running once the test is over.
func TestClusterSmoke(t *testing.T) {
	requireBinaries(t)
	var pids []int
	t.Run("up", func(t *testing.T) {
		c := Start(t)
		t.Logf("kube-apiserver ready after %s", c.ReadyAfter)
		for _, p := range c.procs {
			pids = append(pids, p.cmd.Process.Pid)
		}

		var v struct {
			ServerVersion struct{ GitVersion string } `json:"serverVersion"`
		}
		if err := json.Unmarshal([]byte(c.MustKubectl("version", "-o", "json")), &v); err != nil {
			t.Fatal(err)
		}
		if v.ServerVersion.GitVersion != Version {
			t.Errorf("server version %q, want %s", v.ServerVersion.GitVersion, Version)
		}

		c.MustKubectl("create", "namespace", "smoke")
		if out := c.MustKubectl("get", "ns", "-o", "name"); !strings.Contains(out, "namespace/smoke") {
			t.Errorf("kubectl get ns does not list the new namespace:\n%s", out)
		}
		// A pod needs no ServiceAccount (the plugin is off) and may be
		// privileged (validation allows it), so admission webhooks see it.
		_, err := c.KubectlStdin(`apiVersion: v1
kind: Pod
metadata: {name: p, namespace: smoke}
spec:
  containers:
  - name: c
    image: example.com/x:1
    securityContext: {privileged: true}
`, "apply", "-f", "-")
		if err != nil {
			t.Fatal(err)
		}
		// kubectl's failures carry stderr.
		_, err = c.Kubectl("get", "pod", "nope", "-n", "smoke")
		var ke *KubectlError
		if !errors.As(err, &ke) || !strings.Contains(ke.Stderr, `"nope" not found`) {
			t.Errorf("kubectl get of a missing pod: %v", err)
		}
	})
	if len(pids) != 2 {
		t.Fatalf("%d processes recorded, want etcd and kube-apiserver", len(pids))
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still there after the test: %v", pid, err)
		}
	}
}

// A validating webhook served by ServeWebhook is called by the apiserver
// with the generated caBundle, and its message reaches kubectl.
func TestServeWebhook(t *testing.T) {
	c := Start(t)
	var calls atomic.Int32
	url, caPEM := ServeWebhook(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		var rev admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &rev); err != nil || rev.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		rev.Response = &admissionv1.AdmissionResponse{
			UID:     rev.Request.UID,
			Allowed: rev.Request.Name != "refused",
			Result:  &metav1.Status{Message: "refused by the test webhook"},
		}
		rev.Request = nil
		json.NewEncoder(w).Encode(rev)
	}))
	c.MustKubectl("create", "namespace", "hooked")
	cfg := fmt.Sprintf(`apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: test}
webhooks:
- name: test.bulwark.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: 5
  clientConfig:
    url: %s/validate
    caBundle: %s
  namespaceSelector:
    matchLabels: {kubernetes.io/metadata.name: hooked}
  rules:
  - apiGroups: [""]
    apiVersions: [v1]
    operations: [CREATE]
    resources: [configmaps]
`, url, b64(caPEM))
	if _, err := c.KubectlStdin(cfg, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	// The apiserver picks the configuration up asynchronously.
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		_, err = c.Kubectl("create", "configmap", "refused", "-n", "hooked")
		if err != nil {
			break
		}
		c.MustKubectl("delete", "configmap", "refused", "-n", "hooked")
		time.Sleep(200 * time.Millisecond)
	}
	var ke *KubectlError
	if !errors.As(err, &ke) || !strings.Contains(ke.Stderr, "refused by the test webhook") {
		t.Fatalf("configmap not refused by the webhook: %v", err)
	}
	c.MustKubectl("create", "configmap", "allowed", "-n", "hooked")
	if n := calls.Load(); n < 2 {
		t.Errorf("webhook called %d times, want at least 2", n)
	}
}
