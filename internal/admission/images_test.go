package admission_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/admission"
)

func TestCertifiedDigestAdmittedUncertifiedDenied(t *testing.T) {
	f := newFixture(t)
	w := newWebhook(t, f.config(), nil)
	h := w.Handler()

	ok := post(t, h, "/validate", review(t, "Pod", "shop", goodPod(f.certified.String())))
	if !ok.Allowed {
		t.Fatalf("certified digest denied: %s", message(ok))
	}
	if !w.Known(f.certified.String()) {
		t.Error("a verified digest is not in the cache")
	}

	bad := post(t, h, "/validate", review(t, "Pod", "shop", goodPod(f.uncertified.String())))
	if bad.Allowed {
		t.Fatal("uncertified digest admitted")
	}
	msg := message(bad)
	for _, want := range []string{`container "app" image ` + f.uncertified.String(), "is not certified", "no signature", "(rule image)", `run "bulwark certify ` + f.uncertified.String() + ` --key ..."`} {
		if !strings.Contains(msg, want) {
			t.Errorf("denial %q lacks %q", msg, want)
		}
	}

	// A tag of the uncertified image is resolved and denied the same way.
	tagged := post(t, h, "/validate", review(t, "Pod", "shop", goodPod(f.reg.Ref("shop/evil:1.0"))))
	if tagged.Allowed || !strings.Contains(message(tagged), "is not certified") {
		t.Errorf("uncertified tag: allowed=%v %q", tagged.Allowed, message(tagged))
	}
}

func TestOtherKeyDenied(t *testing.T) {
	f := newFixture(t)
	other := newFixture(t) // another key
	w := newWebhook(t, other.config(), nil)
	r := post(t, w.Handler(), "/validate", review(t, "Pod", "shop", goodPod(f.certified.String())))
	if r.Allowed || !strings.Contains(message(r), "does not verify with the key") || strings.Contains(message(r), "1 signatures") {
		t.Errorf("image signed by an untrusted key: allowed=%v %q", r.Allowed, message(r))
	}
}

func TestRequiredPolicyDigest(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	cfg.PolicyDigest = "sha256:other-policy"
	w := newWebhook(t, cfg, nil)
	r := post(t, w.Handler(), "/validate", review(t, "Pod", "shop", goodPod(f.certified.String())))
	if r.Allowed || !strings.Contains(message(r), "under policy sha256:p1, not sha256:other-policy") {
		t.Errorf("decision under another policy: allowed=%v %q", r.Allowed, message(r))
	}
}

func TestMutatePinsTags(t *testing.T) {
	f := newFixture(t)
	w := newWebhook(t, f.config(), nil)
	tag := f.reg.Ref("shop/api:1.4")
	r := post(t, w.Handler(), "/mutate", review(t, "Deployment", "shop", `apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  template:
    metadata: {labels: {owner: shop}}
    spec:
      initContainers: [{name: init, image: `+tag+`}]
      containers: [{name: app, image: `+f.certified.String()+`}, {name: side, image: `+tag+`}, {name: evil, image: `+f.reg.Ref("shop/evil:1.0")+`}]
`))
	if !r.Allowed || r.PatchType == nil || string(*r.PatchType) != "JSONPatch" {
		t.Fatalf("mutate: allowed=%v patchType=%v", r.Allowed, r.PatchType)
	}
	var ops []map[string]any
	if err := json.Unmarshal(r.Patch, &ops); err != nil {
		t.Fatal(err)
	}
	want := f.reg.Host + "/shop/api@" + f.certified.DigestStr()
	got := map[string]any{}
	for _, op := range ops {
		got[op["path"].(string)] = op["value"]
	}
	if len(ops) != 2 || got["/spec/template/spec/initContainers/0/image"] != want || got["/spec/template/spec/containers/1/image"] != want {
		t.Errorf("patch = %s, want both certified tags replaced by %s and the uncertified one left as written", r.Patch, want)
	}
}

func TestModes(t *testing.T) {
	f := newFixture(t)
	w := newWebhook(t, f.config(), nil)
	h := w.Handler()
	img := f.uncertified.String()
	warn := post(t, h, "/validate", review(t, "Pod", "dev-alice", goodPod(img)))
	if !warn.Allowed || len(warn.Warnings) != 1 || !strings.Contains(warn.Warnings[0], "is not certified") {
		t.Errorf("warn mode: allowed=%v warnings=%q", warn.Allowed, warn.Warnings)
	}
	audit := post(t, h, "/validate", review(t, "Pod", "lab", goodPod(img)))
	if !audit.Allowed || len(audit.Warnings) != 0 {
		t.Errorf("audit mode: allowed=%v warnings=%q", audit.Allowed, audit.Warnings)
	}
	enforce := post(t, h, "/validate", review(t, "Pod", "shop", goodPod(img)))
	if enforce.Allowed {
		t.Error("enforce mode admitted an uncertified image")
	}
	// Exempt namespaces are not evaluated at all.
	cfg := f.config()
	cfg.Exempt = []string{"kube-system"}
	w2 := newWebhook(t, cfg, nil)
	if r := post(t, w2.Handler(), "/validate", review(t, "Pod", "kube-system", goodPod(img))); !r.Allowed {
		t.Errorf("exempt namespace denied: %s", message(r))
	}
}

// TestRegistryUnreachableFailurePolicy: an unknown digest that cannot be
// verified is denied (closed) or admitted with a warning (open).
func TestRegistryUnreachableFailurePolicy(t *testing.T) {
	f := newFixture(t)
	img := f.uncertified.String()
	f.reg.Server.Close()
	for _, tc := range []struct {
		policy  admission.FailurePolicy
		allowed bool
	}{{admission.FailClosed, false}, {admission.FailOpen, true}} {
		cfg := f.config()
		cfg.FailurePolicy = tc.policy
		w := newWebhook(t, cfg, nil)
		r := post(t, w.Handler(), "/validate", review(t, "Pod", "shop", goodPod(img)))
		text := message(r) + strings.Join(r.Warnings, " ")
		if r.Allowed != tc.allowed || !strings.Contains(text, "could not be verified within 2s") {
			t.Errorf("failurePolicy %s: allowed=%v %q", tc.policy, r.Allowed, text)
		}
	}
}

// A container without an image is denied with a message that says so.
func TestEmptyImage(t *testing.T) {
	f := newFixture(t)
	w := newWebhook(t, f.config(), nil)
	r := post(t, w.Handler(), "/validate", review(t, "Pod", "shop", goodPod(`""`)))
	if r.Allowed || r.Result == nil || !strings.Contains(r.Result.Message, "has no image") {
		t.Errorf("empty image: allowed=%v result=%+v", r.Allowed, r.Result)
	}
}
