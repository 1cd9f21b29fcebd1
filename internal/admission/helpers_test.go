package admission_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/bulwark-sec/bulwark/internal/admission"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

// fixture is a registry with a certified image, an uncertified one, and
// the key that certifies.
type fixture struct {
	reg    *registrytest.Registry
	signer *sign.KeySigner
	// certified is shop/api:1.4, signed with a passing decision
	// attestation; uncertified is shop/evil:1.0, never signed.
	certified, uncertified name.Digest
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{reg: registrytest.New(t), signer: sign.NewKeySigner(k)}
	f.certified = f.push(t, "shop/api:1.4")
	f.certify(t, f.certified)
	f.uncertified = f.push(t, "shop/evil:1.0")
	return f
}

func (f *fixture) push(t *testing.T, repoTag string) name.Digest {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref := f.reg.Push(t, repoTag, img)
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context().Digest(d.String())
}

// certify signs d and attests a passing decision, as `bulwark certify`
// does.
func (f *fixture) certify(t *testing.T, d name.Digest) {
	t.Helper()
	ctx := context.Background()
	if err := sign.SignImage(ctx, d, f.signer, nil, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	pred, _ := json.Marshal(map[string]any{"time": time.Now().UTC().Format(time.RFC3339), "policyDigest": "sha256:p1", "pass": true})
	if err := sign.AttestImage(ctx, d, f.signer, sign.DecisionPredicateType, pred, sign.Options{}); err != nil {
		t.Fatal(err)
	}
}

// config is the configuration most tests use: every rule on, placement
// and owners configured, trusting the fixture's key.
func (f *fixture) config() *admission.Config {
	return &admission.Config{
		TrustPolicy:  admission.InlineTrust(f.signer.PublicKey()),
		VerifyBudget: 2 * time.Second,
		Images: []admission.ImageRule{
			{Namespaces: []string{"dev-*"}, Mode: admission.Warn},
			{Namespaces: []string{"lab"}, Mode: admission.Audit},
			{Mode: admission.Enforce},
		},
		Pods: admission.PodRules{
			AllowedCapabilities: []string{"NET_BIND_SERVICE"},
			Exceptions: []admission.PodException{
				{Namespaces: []string{"monitoring"}, Allow: []string{"hostNetwork", "hostPID", "hostPath"}},
				{Namespaces: []string{"legacy"}, Level: &admission.Level{Name: admission.LevelBaseline}},
				{Namespaces: []string{"pinned"}, Level: &admission.Level{Name: admission.LevelRestricted, Pinned: true, Minor: 33}},
			},
		},
		Placement: &admission.Placement{
			SensitiveValues: []string{"confidential", "restricted"},
			Namespaces:      []string{"payments"},
			NodeSelector:    map[string]string{"bulwark.dev/pool": "sensitive"},
			Tolerations:     []admission.Toleration{{Key: "bulwark.dev/pool", Operator: "Equal", Value: "sensitive", Effect: "NoSchedule"}},
		},
		Owners: admission.OwnerRules{Labels: []string{"owner"}},
	}
}

func newWebhook(t *testing.T, cfg *admission.Config, mod func(*admission.Options)) *admission.Webhook {
	t.Helper()
	opts := admission.Options{Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mod != nil {
		mod(&opts)
	}
	w, err := admission.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// review wraps a YAML object in an AdmissionReview as the API server
// sends it.
func review(t testing.TB, kind, namespace, objYAML string) []byte {
	t.Helper()
	raw, err := yaml.YAMLToJSON([]byte(objYAML))
	if err != nil {
		t.Fatal(err)
	}
	group, version, resource := "", "v1", strings.ToLower(kind)+"s"
	switch kind {
	case "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet":
		group = "apps"
	case "Job", "CronJob":
		group = "batch"
	}
	r := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "705ab4f5-6393-11e8-b7cc-42010a800002",
			Kind:      metav1.GroupVersionKind{Group: group, Version: version, Kind: kind},
			Resource:  metav1.GroupVersionResource{Group: group, Version: version, Resource: resource},
			Namespace: namespace,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends an AdmissionReview to path and returns the response.
func post(t testing.TB, h http.Handler, path string, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)))
	if rec.Code != http.StatusOK {
		t.Fatalf("POST %s: %d %s", path, rec.Code, rec.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(io.Reader(rec.Body)).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Response == nil || out.Response.UID != "705ab4f5-6393-11e8-b7cc-42010a800002" {
		t.Fatalf("POST %s: response %+v does not echo the request UID", path, out.Response)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" {
		t.Fatalf("POST %s: response type %s/%s", path, out.APIVersion, out.Kind)
	}
	return out.Response
}

// goodPod is a pod that passes every rule when image is certified.
func goodPod(image string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: api, labels: {owner: shop-team}}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: app
    image: %s
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
`, image)
}

func message(r *admissionv1.AdmissionResponse) string {
	if r.Result == nil {
		return ""
	}
	return r.Result.Message
}
