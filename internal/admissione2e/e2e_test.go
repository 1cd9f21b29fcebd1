package admissione2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"

	"github.com/bulwark-sec/bulwark/internal/admission"
	"github.com/bulwark-sec/bulwark/internal/k8stest"
	"github.com/bulwark-sec/bulwark/internal/kubeinstall"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
	"github.com/bulwark-sec/bulwark/internal/sign"
	"github.com/bulwark-sec/bulwark/internal/store"
)

const (
	ns       = "e2e"
	sbomType = "https://cyclonedx.org/bom"
	// feedPoll is the webhook's certification feed interval here.
	feedPoll = 200 * time.Millisecond
)

// pushImage pushes a random image under repoTag and returns its pinned
// reference.
func pushImage(t *testing.T, reg *registrytest.Registry, repoTag string) name.Digest {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, repoTag, img)
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context().Digest(d.String())
}

// certify signs d and attests an SBOM and a passing policy decision, as
// `bulwark certify` does.
func certify(t *testing.T, d name.Digest, s sign.Signer) {
	t.Helper()
	ctx := t.Context()
	if err := sign.SignImage(ctx, d, s, nil, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := sign.AttestImage(ctx, d, s, sbomType, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6"}`), sign.Options{}); err != nil {
		t.Fatal(err)
	}
	decision, _ := json.Marshal(map[string]any{"time": time.Now().UTC().Format(time.RFC3339), "policyDigest": "sha256:e2e", "pass": true, "rules": []any{}})
	if err := sign.AttestImage(ctx, d, s, sign.DecisionPredicateType, decision, sign.Options{}); err != nil {
		t.Fatal(err)
	}
}

// startWebhook runs the webhook in process over HTTPS on 127.0.0.1 and
// registers it with the API server through the configurations `bulwark
// admission install` makes, pointed at that address.
func startWebhook(t *testing.T, c *k8stest.Cluster, cfg *admission.Config) *admission.Webhook {
	t.Helper()
	w, err := admission.New(cfg, admission.Options{Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("webhook Run: %v", err)
		}
	})
	url, caPEM := k8stest.ServeWebhook(t, w.Handler())
	m, v := kubeinstall.WebhookConfigurations(kubeinstall.Options{}, caPEM, func(path string) admissionregistrationv1.WebhookClientConfig {
		u := url + path
		return admissionregistrationv1.WebhookClientConfig{URL: &u, CABundle: caPEM}
	})
	for _, obj := range []any{m, v} {
		y, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.KubectlStdin(string(y), "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// pod is a least-privilege pod running image; extra is more YAML under
// the container (indented 4), labels its labels.
func pod(name, image, labels, extra string) string {
	if labels == "" {
		labels = "{}"
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
  labels: %s
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: app
    image: %s
%s`, name, ns, labels, image, extra)
}

const leastPrivilege = "    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}\n"

// denied returns kubectl's stderr for a refused create, failing the test
// when it was admitted.
func denied(t *testing.T, err error, what string) string {
	t.Helper()
	var ke *k8stest.KubectlError
	if err == nil {
		t.Fatalf("%s was admitted", what)
	}
	if !errors.As(err, &ke) {
		t.Fatalf("%s: %v", what, err)
	}
	return ke.Stderr
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s: %q lacks %q", what, got, w)
		}
	}
}

type podJSON struct {
	Metadata struct {
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Containers   []struct{ Image string } `json:"containers"`
		NodeSelector map[string]string        `json:"nodeSelector"`
		Tolerations  []struct {
			Key, Operator, Value, Effect string
		} `json:"tolerations"`
	} `json:"spec"`
}

func getPod(t *testing.T, c *k8stest.Cluster, name string) podJSON {
	t.Helper()
	var p podJSON
	if err := json.Unmarshal([]byte(c.MustKubectl("get", "pod", name, "-n", ns, "-o", "json")), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAdmissionEndToEnd drives the webhook through kubectl against a real
// API server: uncertified images, privileged pods and uncertified
// Deployments are refused with Bulwark's message; a certified tag is
// pinned to its digest; a sensitive workload gets the segregated pool's
// nodeSelector and tolerations; a revocation on the server refuses the
// next pod of that digest; and with the server stopped, known digests
// are still admitted and unknown ones refused.
func TestAdmissionEndToEnd(t *testing.T) {
	start := time.Now()
	c := k8stest.Start(t)
	t.Logf("kube-apiserver ready after %s", c.ReadyAfter.Round(time.Millisecond))

	reg := registrytest.New(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := sign.NewKeySigner(key)
	appA := pushImage(t, reg, "team/app:1")
	appB := pushImage(t, reg, "team/app:2")
	other := pushImage(t, reg, "team/other:1") // pushed, never certified
	certify(t, appA, signer)
	certify(t, appB, signer)
	repo := appA.Context().Name()

	cp := servertest.Start(t, server.Config{}, servertest.Image{Digest: appA, Tag: "1", Certified: true}, servertest.Image{Digest: appB, Tag: "2", Certified: true})
	cfg := &admission.Config{
		TrustPolicy: &sign.TrustPolicy{File: "(e2e)", Entries: []sign.TrustEntry{{
			Repositories: []string{"**"}, Keys: []crypto.PublicKey{signer.PublicKey()},
			Attestations: []string{sbomType, sign.DecisionPredicateType},
		}}},
		MaxDecisionAge: time.Hour,
		Placement: &admission.Placement{
			SensitiveValues: []string{"restricted"},
			NodeSelector:    map[string]string{"bulwark.dev/pool": "restricted"},
			Tolerations:     []admission.Toleration{{Key: "bulwark.dev/pool", Operator: "Equal", Value: "restricted", Effect: "NoSchedule"}},
		},
		Server: admission.ServerConfig{URL: cp.URL, Token: cp.Viewer, PollInterval: feedPoll},
	}
	w := startWebhook(t, c, cfg)
	c.MustKubectl("create", "namespace", ns)
	setup := time.Since(start)

	// The configurations take effect asynchronously: retry the first
	// uncertified pod until it is refused.
	uncertified := other.Context().Tag("1").String()
	var stderr string
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		_, err := c.KubectlStdin(pod(fmt.Sprintf("uncertified-%d", i), uncertified, "", leastPrivilege), "create", "-f", "-")
		if err != nil || time.Now().After(deadline) {
			stderr = denied(t, err, "a pod with an uncertified image")
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The image is named as written or pinned to its digest (the mutating
	// webhook resolves tags before validation refuses them).
	mustContain(t, "uncertified pod", stderr,
		`admission webhook "`+kubeinstall.ValidatingWebhookName+`" denied the request: bulwark: container "app" image `+other.Context().Name(),
		"is not certified", "(rule image)", `bulwark certify `+other.Context().Name())

	t.Run("tag pinned to the certified digest", func(t *testing.T) {
		c.MustKubectl("delete", "pods", "--all", "-n", ns, "--wait=false")
		if _, err := c.KubectlStdin(pod("tagged", repo+":1", "", leastPrivilege), "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		if got := getPod(t, c, "tagged").Spec.Containers[0].Image; got != appA.String() {
			t.Errorf("stored image %q, want %s", got, appA)
		}
		// The other tag pins to its own digest.
		if _, err := c.KubectlStdin(pod("tagged-2", repo+":2", "", leastPrivilege), "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		if got := getPod(t, c, "tagged-2").Spec.Containers[0].Image; got != appB.String() {
			t.Errorf("stored image %q, want %s", got, appB)
		}
	})

	t.Run("privileged pod denied", func(t *testing.T) {
		_, err := c.KubectlStdin(pod("privileged", appA.String(), "", "    securityContext: {privileged: true, capabilities: {drop: [ALL]}}\n"), "apply", "-f", "-")
		mustContain(t, "privileged pod", denied(t, err, "a privileged pod"), `bulwark: container "app"`, "(rule privileged, Pod Security Standard restricted:latest)")
	})

	t.Run("uncertified Deployment denied", func(t *testing.T) {
		dep := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: %s}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: web
        image: %s
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
`, ns, uncertified)
		_, err := c.KubectlStdin(dep, "apply", "-f", "-")
		mustContain(t, "uncertified Deployment", denied(t, err, "a Deployment with an uncertified image"),
			`bulwark: container "web" image `+other.Context().Name(), "is not certified", "(rule image)")
		if _, err := c.Kubectl("get", "deployment", "web", "-n", ns); err == nil {
			t.Error("the refused Deployment is stored")
		}
		// The same Deployment with a certified image is admitted, pinned.
		if _, err := c.KubectlStdin(strings.Replace(dep, uncertified, repo+":1", 1), "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		got := c.MustKubectl("get", "deployment", "web", "-n", ns, "-o", "jsonpath={.spec.template.spec.containers[0].image}")
		if got != appA.String() {
			t.Errorf("Deployment image %q, want %s", got, appA)
		}
	})

	t.Run("sensitive workload placed on its pool", func(t *testing.T) {
		if _, err := c.KubectlStdin(pod("sensitive", appA.String(), "{bulwark.dev/data-classification: restricted}", leastPrivilege), "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		p := getPod(t, c, "sensitive")
		if p.Spec.NodeSelector["bulwark.dev/pool"] != "restricted" {
			t.Errorf("nodeSelector %v, want bulwark.dev/pool=restricted", p.Spec.NodeSelector)
		}
		found := false
		for _, tol := range p.Spec.Tolerations {
			found = found || (tol.Key == "bulwark.dev/pool" && tol.Value == "restricted" && tol.Effect == "NoSchedule")
		}
		if !found {
			t.Errorf("tolerations %+v lack the pool's", p.Spec.Tolerations)
		}
		// A plain workload is not placed there.
		if p := getPod(t, c, "tagged"); p.Spec.NodeSelector["bulwark.dev/pool"] != "" {
			t.Errorf("a non-sensitive pod got nodeSelector %v", p.Spec.NodeSelector)
		}
	})

	t.Run("revocation refuses the next admission", func(t *testing.T) {
		if !w.Known(appA.String()) {
			t.Fatalf("%s is not in the webhook's cache before the revocation", appA)
		}
		revoked := time.Now()
		cp.SetCertification(t, appA, store.Revoked, "e2e: CVE-2026-0001")
		var err error
		for i := 0; ; i++ {
			_, err = c.KubectlStdin(pod(fmt.Sprintf("after-revoke-%d", i), appA.String(), "", leastPrivilege), "create", "-f", "-")
			if err != nil || time.Since(revoked) > 10*time.Second {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		mustContain(t, "revoked digest", denied(t, err, "a pod of a revoked digest"),
			`bulwark: container "app" image `+appA.String(), "revoked by the control plane (e2e: CVE-2026-0001)")
		t.Logf("revocation took effect after %s (feed poll %s)", time.Since(revoked).Round(time.Millisecond), feedPoll)
		// The tag of the revoked digest is refused too.
		_, err = c.KubectlStdin(pod("after-revoke-tag", repo+":1", "", leastPrivilege), "create", "-f", "-")
		denied(t, err, "a pod of the revoked digest's tag")
		// A running pod of the revoked digest can still be labelled (an
		// incident responder, a controller removing a finalizer): an UPDATE
		// that leaves the spec alone is not judged again.
		if _, err := c.Kubectl("label", "pod", "tagged", "-n", ns, "incident=cve-2026-0001"); err != nil {
			t.Errorf("labelling a running pod of the revoked digest: %v", err)
		}
		if got := getPod(t, c, "tagged").Metadata.Labels["incident"]; got != "cve-2026-0001" {
			t.Errorf("label after kubectl label: %q", got)
		}
	})

	t.Run("server down: cache keeps known digests, unknown refused", func(t *testing.T) {
		cp.Stop()
		time.Sleep(2 * feedPoll) // at least one failed poll
		if _, err := c.KubectlStdin(pod("known", appB.String(), "", leastPrivilege), "apply", "-f", "-"); err != nil {
			t.Errorf("known certified digest refused with the server down: %v", err)
		}
		_, err := c.KubectlStdin(pod("unknown", uncertified, "", leastPrivilege), "apply", "-f", "-")
		mustContain(t, "unknown image, server down", denied(t, err, "an uncertified image with the server down"), "is not certified")
		_, err = c.KubectlStdin(pod("still-revoked", appA.String(), "", leastPrivilege), "apply", "-f", "-")
		mustContain(t, "revoked digest, server down", denied(t, err, "a revoked digest with the server down"), "revoked")
	})
	t.Logf("setup %s (apiserver %s), whole test %s", setup.Round(time.Millisecond), c.ReadyAfter.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
