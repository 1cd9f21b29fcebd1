package admission_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// updateReview is an AdmissionReview of an UPDATE from oldYAML to newYAML.
func updateReview(t *testing.T, kind, namespace, oldYAML, newYAML string) []byte {
	t.Helper()
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(review(t, kind, namespace, newYAML), &r); err != nil {
		t.Fatal(err)
	}
	raw, err := yaml.YAMLToJSON([]byte(oldYAML))
	if err != nil {
		t.Fatal(err)
	}
	r.Request.Operation = admissionv1.Update
	r.Request.OldObject = runtime.RawExtension{Raw: raw}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withMetadata returns podYAML with its metadata line replaced.
func withMetadata(podYAML, metadata string) string {
	return strings.Replace(podYAML, "metadata: {name: api, labels: {owner: shop-team}}", "metadata: "+metadata, 1)
}

// TestUpdatePodMetadataOnly: a running pod whose image is no longer
// certified (uncertified, or revoked after it started) still takes label,
// finalizer and ownerReference updates.
func TestUpdatePodMetadataOnly(t *testing.T) {
	f := newFixture(t)
	cp := servertest.Start(t, server.Config{WatchInterval: time.Hour}, servertest.Image{Digest: f.certified, Tag: "1.4"})
	cp.SetCertification(t, f.certified, store.Certified, "")
	w := newWebhook(t, f.serverConfig(cp), nil)
	if err := w.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	h := w.Handler()
	// The pod started while its digest was certified, then it was revoked.
	running := goodPod(f.certified.String())
	if r := post(t, h, "/validate", review(t, "Pod", "shop", running)); !r.Allowed {
		t.Fatalf("certified pod denied: %s", message(r))
	}
	cp.SetCertification(t, f.certified, store.Revoked, "CVE-2026-1234 in openssl")
	if err := w.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}

	privileged := strings.Replace(goodPod(f.uncertified.String()), "allowPrivilegeEscalation: false", "privileged: true", 1)
	for name, old := range map[string]string{"revoked": running, "uncertified and privileged": privileged} {
		for what, upd := range map[string]string{
			"label":            withMetadata(old, "{name: api, labels: {owner: shop-team, incident: inc-42}}"),
			"finalizer":        withMetadata(old, "{name: api, labels: {owner: shop-team}, finalizers: []}"),
			"ownerReferences":  withMetadata(old, "{name: api, labels: {owner: shop-team}, ownerReferences: [{apiVersion: batch/v1, kind: Job, name: j, uid: u1}]}"),
			"job finalizer":    withMetadata(old, "{name: api, labels: {owner: shop-team}, finalizers: [batch.kubernetes.io/job-tracking]}"),
			"annotation added": withMetadata(old, "{name: api, labels: {owner: shop-team}, annotations: {a: b}}"),
		} {
			body := updateReview(t, "Pod", "shop", old, upd)
			if r := post(t, h, "/validate", body); !r.Allowed {
				t.Errorf("%s pod, %s update denied: %s", name, what, message(r))
			}
			if r := post(t, h, "/mutate", body); r.Patch != nil {
				t.Errorf("%s pod, %s update patched: %s", name, what, r.Patch)
			}
			// The same pod as a create is still denied.
			if r := post(t, h, "/validate", review(t, "Pod", "shop", upd)); r.Allowed {
				t.Errorf("%s pod (%s) admitted as a create", name, what)
			}
		}
	}

	// Removing a required owner label is a new finding, and denied.
	r := post(t, h, "/validate", updateReview(t, "Pod", "shop", running, withMetadata(running, "{name: api, labels: {app: api}}")))
	if r.Allowed || !strings.Contains(message(r), "rule owner") || strings.Contains(message(r), "rule image") {
		t.Errorf("owner label removed: allowed=%v %q, want only the owner rule", r.Allowed, message(r))
	}
	// A pod that never had the owner label may still be labelled.
	noOwner := withMetadata(running, "{name: api}")
	if r := post(t, h, "/validate", updateReview(t, "Pod", "shop", noOwner, withMetadata(running, "{name: api, labels: {incident: inc-42}}"))); !r.Allowed {
		t.Errorf("labelling a pod without owner label denied: %s", message(r))
	}
}

// TestUpdatePodSpecChange: what an update adds to a pod is judged.
func TestUpdatePodSpecChange(t *testing.T) {
	f := newFixture(t)
	w := newWebhook(t, f.config(), nil)
	h := w.Handler()
	running := goodPod(f.certified.String())

	// kubectl set image to an uncertified image.
	r := post(t, h, "/validate", updateReview(t, "Pod", "shop", running, goodPod(f.uncertified.String())))
	if r.Allowed || !strings.Contains(message(r), `container "app" image `+f.uncertified.String()+": is not certified") {
		t.Errorf("image changed to an uncertified one: allowed=%v %q", r.Allowed, message(r))
	}
	// To a certified tag: admitted, and the mutating webhook pins it.
	tag := f.reg.Ref("shop/api:1.4")
	r = post(t, h, "/validate", updateReview(t, "Pod", "shop", goodPod(f.uncertified.String()), goodPod(tag)))
	if !r.Allowed {
		t.Errorf("image changed to a certified tag denied: %s", message(r))
	}
	r = post(t, h, "/mutate", updateReview(t, "Pod", "shop", goodPod(f.uncertified.String()), goodPod(tag)))
	if !strings.Contains(string(r.Patch), "/spec/containers/0/image") || !strings.Contains(string(r.Patch), f.certified.DigestStr()) {
		t.Errorf("changed tag not pinned: %s", r.Patch)
	}

	// An ephemeral debug container: its image and its privileges are
	// judged, the running container's uncertified image is not.
	old := goodPod(f.uncertified.String())
	debug := old + `  ephemeralContainers:
  - name: debug
    image: ` + f.certified.String() + `
    securityContext: {privileged: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
`
	r = post(t, h, "/validate", updateReview(t, "Pod", "shop", old, debug))
	msg := message(r)
	if r.Allowed || !strings.Contains(msg, `ephemeral container "debug"`) || !strings.Contains(msg, "rule privileged") || strings.Contains(msg, `container "app"`) {
		t.Errorf("privileged ephemeral container: allowed=%v %q, want only the debug container's privileged finding", r.Allowed, msg)
	}
	okDebug := strings.Replace(debug, "privileged: true, ", "", 1)
	if r := post(t, h, "/validate", updateReview(t, "Pod", "shop", old, okDebug)); !r.Allowed {
		t.Errorf("certified least-privilege ephemeral container denied: %s", message(r))
	}
	evilDebug := strings.Replace(okDebug, "image: "+f.certified.String(), "image: "+f.uncertified.String(), 1)
	r = post(t, h, "/validate", updateReview(t, "Pod", "shop", old, evilDebug))
	if r.Allowed || !strings.Contains(message(r), `ephemeral container "debug" image `+f.uncertified.String()+": is not certified") {
		t.Errorf("uncertified ephemeral container: allowed=%v %q", r.Allowed, message(r))
	}
}

// TestUpdatePodNoPlacementPatch: the mutating webhook does not patch a
// node selector into a running sensitive pod (it is immutable).
func TestUpdatePodNoPlacementPatch(t *testing.T) {
	f := newFixture(t)
	w := newWebhook(t, f.config(), nil)
	old := goodPod(f.certified.String())
	upd := withMetadata(old, "{name: api, labels: {owner: shop-team, incident: inc-42}}")
	r := post(t, w.Handler(), "/mutate", updateReview(t, "Pod", "payments", old, upd))
	if r.Patch != nil {
		t.Errorf("update of a running sensitive pod patched: %s", r.Patch)
	}
	if r := post(t, w.Handler(), "/mutate", review(t, "Pod", "payments", old)); !strings.Contains(string(r.Patch), "nodeSelector") {
		t.Errorf("create of a sensitive pod not given the pool: %s", r.Patch)
	}
}

// TestUpdateWorkload: a workload is judged only when its pod template
// changes.
func TestUpdateWorkload(t *testing.T) {
	f := newFixture(t)
	w := newWebhook(t, f.config(), nil)
	h := w.Handler()
	old := deployment(f.uncertified.String())
	scaled := strings.Replace(old, "spec:\n  template:", "spec:\n  replicas: 5\n  template:", 1)
	annotated := strings.Replace(scaled, "metadata: {name: api}", "metadata: {name: api, annotations: {deployment.kubernetes.io/revision: \"2\"}, labels: {team: shop}}", 1)
	for what, upd := range map[string]string{"replicas": scaled, "annotations and labels": annotated} {
		body := updateReview(t, "Deployment", "shop", old, upd)
		if r := post(t, h, "/validate", body); !r.Allowed {
			t.Errorf("Deployment %s update denied: %s", what, message(r))
		}
		if r := post(t, h, "/mutate", body); r.Patch != nil {
			t.Errorf("Deployment %s update patched: %s", what, r.Patch)
		}
	}
	// A template change rolls out new pods: judged in full.
	good := deployment(f.certified.String())
	r := post(t, h, "/validate", updateReview(t, "Deployment", "shop", good, old))
	if r.Allowed || !strings.Contains(message(r), "is not certified") {
		t.Errorf("template image changed to an uncertified one: allowed=%v %q", r.Allowed, message(r))
	}
	if r := post(t, h, "/validate", updateReview(t, "Deployment", "shop", old, good)); !r.Allowed {
		t.Errorf("template image changed to a certified one denied: %s", message(r))
	}
	restarted := strings.Replace(old, "metadata: {labels: {owner: shop-team}}", "metadata: {labels: {owner: shop-team}, annotations: {kubectl.kubernetes.io/restartedAt: now}}", 1)
	if r := post(t, h, "/validate", updateReview(t, "Deployment", "shop", old, restarted)); r.Allowed {
		t.Error("a rollout restart of an uncertified template admitted")
	}
	// The mutating webhook pins a changed template's tag.
	tagged := deployment(f.reg.Ref("shop/api:1.4"))
	if r := post(t, h, "/mutate", updateReview(t, "Deployment", "shop", old, tagged)); !strings.Contains(string(r.Patch), f.certified.DigestStr()) {
		t.Errorf("changed template tag not pinned: %s", r.Patch)
	}
}
