package admission_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/admission"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

func writeKey(t *testing.T, dir string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sign.MarshalPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	writeKey(t, dir)
	file := filepath.Join(dir, "admission.yaml")
	good := `trust:
  keys: [key.pub]
images:
  - namespaces: ["dev-*"]
    mode: warn
placement:
  sensitiveValues: [confidential]
  nodeSelector: {pool: sensitive}
owners:
  labels: [owner]
`
	if err := os.WriteFile(file, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := admission.LoadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.VerifyBudget.Seconds() != 2 || cfg.FailurePolicy != admission.FailClosed || cfg.Placement.Label != admission.DefaultPlacementLabel ||
		cfg.TrustPolicy == nil || len(cfg.TrustPolicy.Entries[0].Keys) != 1 || cfg.Pods.Mode != admission.Enforce ||
		cfg.Server.Overlap != admission.DefaultFeedOverlap {
		t.Errorf("defaults not filled: %+v", cfg)
	}
	if _, err := admission.New(cfg, admission.Options{}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ yaml, want string }{
		{"trust:\n  keys: [key.pub]\nimages:\n  - mode: block\n", `admission.yaml:4: mode "block": want enforce, warn, audit or off`},
		{"trust:\n  keys: [key.pub]\nfailurePolicy: maybe\n", `admission.yaml:3: failurePolicy "maybe"`},
		{"trust:\n  keys: [key.pub]\nimagez: []\n", "admission.yaml:3: field imagez not found"},
		{"trust:\n  keys: [missing.pub]\n", "admission.yaml:2: reading key"},
		{"trust:\n  keys: [key.pub]\nplacement:\n  sensitiveValues: [x]\n", "admission.yaml:3: nodeSelector of the segregated pool is required"},
		{"trust:\n  keys: [key.pub]\npods:\n  exceptions:\n    - allow: [everything]\n", `unknown rule "everything"`},
		{"trust:\n  keys: [key.pub]\nexempt: ['[']\n", `admission.yaml:3: namespace pattern "["`},
		{"trust:\n  keys: [key.pub]\nserver:\n  url: bulwark:8480\n", `admission.yaml:4: url "bulwark:8480": want http:// or https://`},
		{"trust:\n  keys: [key.pub]\nserver:\n  url: http://b:8480\n  overlap: -1s\n", `admission.yaml:5: overlap -1s: must be positive`},
		{"trust:\n  keys: [key.pub]\nserver:\n  cachefile: /x\n", "admission.yaml:4: field cachefile not found"},
		{"", "empty admission config"},
	} {
		if err := os.WriteFile(file, []byte(tc.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := admission.LoadConfig(file)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadConfig(%q) = %v, want %q", tc.yaml, err, tc.want)
		}
	}
	// No trust: only an offline webhook (bulwark check) may be built.
	if _, err := admission.New(&admission.Config{}, admission.Options{}); err == nil {
		t.Error("New without a trust policy succeeded")
	}
	if _, err := admission.New(&admission.Config{}, admission.Options{Offline: true}); err != nil {
		t.Errorf("offline New without a trust policy: %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("trust:\n  keys: [key.pub]\nimages:\n  - mode: warn\n"))
	f.Add([]byte("placement:\n  nodeSelector: {a: b}\n  sensitiveValues: [x]\n  tolerations: [{key: a, operator: Bad}]\n"))
	f.Add([]byte("pods: [1, 2]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = admission.ParseConfig(filepath.Join(t.TempDir(), "a.yaml"), b)
	})
}

// FuzzReview posts arbitrary bodies to both webhooks: never a panic,
// always 200 with a response or 400.
func FuzzReview(f *testing.F) {
	f.Add(review(f, "Pod", "shop", goodPod("registry.local/shop/api@sha256:"+strings.Repeat("a", 64))))
	f.Add(review(f, "CronJob", "shop", "kind: CronJob\nspec: {jobTemplate: {spec: {template: {spec: {containers: [{name: a, image: ':::'}]}}}}}\n"))
	f.Add([]byte(`{"request":{"uid":"x","kind":{"kind":"Deployment"},"operation":"CREATE","object":{"spec":"nope"}}}`))
	f.Add([]byte(`{}`))
	w, err := admission.New(&admission.Config{}, admission.Options{Offline: true})
	if err != nil {
		f.Fatal(err)
	}
	h := w.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/validate", "/mutate"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body))))
			switch rec.Code {
			case http.StatusOK:
				var out struct{ Response *json.RawMessage }
				if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
					t.Fatalf("%s: 200 without a response: %s", path, rec.Body)
				}
			case http.StatusBadRequest:
			default:
				t.Fatalf("%s: status %d", path, rec.Code)
			}
		}
	})
}

func TestDecodeManifests(t *testing.T) {
	src := "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n# comment\n---\napiVersion: v1\nkind: List\nitems:\n- {kind: Pod, metadata: {name: p}, spec: {containers: [{name: a, image: x}]}}\n---\nkind: Job\nmetadata: {name: j}\nspec: {template: {spec: {containers: [{name: a, image: y}]}}}\n"
	ms, err := admission.DecodeManifests("m.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[0].Object != nil || ms[1].Kind != "Pod" || ms[1].Object == nil || ms[2].Object.Pod.Spec.Containers[0].Image != "y" || ms[2].Line != 12 || ms[2].Index != 3 {
		t.Fatalf("DecodeManifests = %+v", ms)
	}
	_, err = admission.DecodeManifests("m.yaml", []byte("kind: Pod\nspec: {containers: 3}\n"))
	if err == nil || !strings.Contains(err.Error(), "m.yaml:1: document 1: decoding Pod") {
		t.Errorf("bad Pod: %v", err)
	}
	_, err = admission.DecodeManifests("m.yaml", []byte("kind: Pod\n---\nkind: [\n"))
	if err == nil || !strings.Contains(err.Error(), "m.yaml:3: document 2: not YAML") {
		t.Errorf("bad YAML: %v", err)
	}
}
