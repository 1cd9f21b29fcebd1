package admission_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-sec/bulwark/internal/admission"
	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

func confidentialPod(image, runtimeClass string) string {
	pod := goodPod(image)
	if runtimeClass != "" {
		pod = strings.Replace(pod, "spec:\n", "spec:\n  runtimeClassName: "+runtimeClass+"\n", 1)
	}
	return pod
}

func recordReference(t *testing.T, d name.Digest, s sign.Signer, k attest.Kind) {
	t.Helper()
	pred := &attest.ReferencePredicate{References: []attest.Reference{{Kind: k, Measurement: make([]byte, 48)}}}
	if err := attest.RecordReference(context.Background(), d, s, pred, sign.Options{}); err != nil {
		t.Fatal(err)
	}
}

// A pod asking for a confidential RuntimeClass is admitted only when each
// of its images carries reference values, signed under the trust policy,
// for that TEE kind; pods in confidential namespaces must ask for one.
func TestConfidentialRuntimeClass(t *testing.T) {
	f := newFixture(t)
	recordReference(t, f.certified, f.signer, attest.SNP)
	bare := f.push(t, "shop/bare:1")
	f.certify(t, bare)
	forged := f.push(t, "shop/forged:1")
	f.certify(t, forged)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	recordReference(t, forged, sign.NewKeySigner(k), attest.SNP) // not by the trusted key

	cfg := f.config()
	cfg.Confidential = &admission.Confidential{RuntimeClasses: map[string]string{"kata-cc-snp": "sev-snp", "kata-cc-tdx": "tdx"},
		Namespaces: []string{"tee-*"}}
	h := newWebhook(t, cfg, nil).Handler()
	for _, tc := range []struct {
		name, ns, image, rc string
		allowed             bool
		msg                 string
	}{
		{"SNP values for an SNP class", "shop", f.certified.String(), "kata-cc-snp", true, ""},
		{"SNP values for a TDX class", "shop", f.certified.String(), "kata-cc-tdx", false, "no signed tdx reference values"},
		{"no values", "shop", bare.String(), "kata-cc-snp", false, "no signed sev-snp reference values"},
		{"values signed by an untrusted key", "shop", forged.String(), "kata-cc-snp", false, "no signed sev-snp reference values"},
		{"not confidential, not required", "shop", bare.String(), "", true, ""},
		{"confidential namespace without a TEE class", "tee-payments", f.certified.String(), "runc", false, "must be confidential"},
		{"confidential namespace with one", "tee-payments", f.certified.String(), "kata-cc-snp", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, h, "/validate", review(t, "Pod", tc.ns, confidentialPod(tc.image, tc.rc)))
			if r.Allowed != tc.allowed || !strings.Contains(message(r), tc.msg) {
				t.Fatalf("allowed %v, message %q; want %v with %q", r.Allowed, message(r), tc.allowed, tc.msg)
			}
		})
	}

	// With a node label, the pod must also be confined to such nodes.
	cfg = f.config()
	cfg.Confidential = &admission.Confidential{RuntimeClasses: map[string]string{"kata-cc-snp": "sev-snp"}, NodeLabel: "bulwark.dev/tee"}
	h = newWebhook(t, cfg, nil).Handler()
	pod := confidentialPod(f.certified.String(), "kata-cc-snp")
	if r := post(t, h, "/validate", review(t, "Pod", "shop", pod)); r.Allowed || !strings.Contains(message(r), "bulwark.dev/tee=sev-snp") {
		t.Fatalf("no node selector: %v %q", r.Allowed, message(r))
	}
	pinned := strings.Replace(pod, "spec:\n", "spec:\n  nodeSelector: {bulwark.dev/tee: sev-snp}\n", 1)
	if r := post(t, h, "/validate", review(t, "Pod", "shop", pinned)); !r.Allowed {
		t.Fatalf("node selector: %q", message(r))
	}
	affinity := strings.Replace(pod, "spec:\n", `spec:
  affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [
    {matchExpressions: [{key: bulwark.dev/tee, operator: In, values: [sev-snp]}]},
    {matchExpressions: [{key: zone, operator: In, values: [a]}]}]}}}
`, 1)
	if r := post(t, h, "/validate", review(t, "Pod", "shop", affinity)); r.Allowed {
		t.Fatal("a second affinity term without the label was admitted")
	}

	if _, err := admission.ParseConfig("c.yaml", []byte("confidential:\n  runtimeClasses: {kata: sev}\n")); err == nil || !strings.Contains(err.Error(), "unknown TEE kind") {
		t.Fatalf("an unknown TEE kind: %v", err)
	}
}
