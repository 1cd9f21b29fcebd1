package respond

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/k8stest"
	"github.com/bulwark-sec/bulwark/internal/kube"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// storeAuditor is api.Auditor without the anchor file: the change and
// its entries in one transaction of the real store.
type storeAuditor struct{ st *store.Store }

func (a storeAuditor) Do(ctx context.Context, fn func(tx *store.Store) ([]audit.Entry, error)) error {
	_, err := a.st.Audited(ctx, fn)
	return err
}

// env is a real kube-apiserver (no controllers, no kubelet: objects are
// created as their controllers would) and a real SQLite store.
type env struct {
	t          *testing.T
	kc         *kube.Client
	kubeconfig string
	st         *store.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cl := k8stest.Start(t)
	kc, err := kube.Load(cl.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, kc: kc, kubeconfig: cl.Kubeconfig, st: openStore(t, filepath.Join(t.TempDir(), "bulwark.db"))}
}

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func (e *env) engine(p *Policy) *Engine {
	return &Engine{Policy: p, Auditor: storeAuditor{e.st}, Orchestrator: &Kubernetes{Client: e.kc}}
}

func (e *env) namespace(ns string) {
	e.t.Helper()
	if err := e.kc.Create(e.t.Context(), "/api/v1/namespaces", corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, nil); err != nil && !kube.IsConflict(err) {
		e.t.Fatal(err)
	}
}

// deployment creates Deployment name in ns with image, its ReplicaSet
// and pods pod-0..pods-1, owned as the controllers would own them, and
// returns the pods as the running inventory would show them.
func (e *env) deployment(ns, name, image string, pods int) []fleet.Workload {
	e.t.Helper()
	ctx := e.t.Context()
	e.namespace(ns)
	labels := map[string]string{"app": name}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}}}
	var d appsv1.Deployment
	err := e.kc.Create(ctx, "/apis/apps/v1/namespaces/"+ns+"/deployments", appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(int32(pods)), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
	}, &d)
	if err != nil {
		e.t.Fatal(err)
	}
	var rs appsv1.ReplicaSet
	err = e.kc.Create(ctx, "/apis/apps/v1/namespaces/"+ns+"/replicasets", appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-rs", OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1",
			Kind: "Deployment", Name: name, UID: d.UID, Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(int32(pods)), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
	}, &rs)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []fleet.Workload
	for i := range pods {
		out = append(out, e.pod(ns, fmt.Sprintf("%s-%d", name, i), image, &metav1.OwnerReference{APIVersion: "apps/v1",
			Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}))
	}
	return out
}

// pod creates a pod (owned by owner when not nil).
func (e *env) pod(ns, name, image string, owner *metav1.OwnerReference) fleet.Workload {
	e.t.Helper()
	e.namespace(ns)
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "web", Image: image}}}}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	var got corev1.Pod
	if err := e.kc.Create(e.t.Context(), "/api/v1/namespaces/"+ns+"/pods", p, &got); err != nil {
		e.t.Fatal(err)
	}
	return fleet.Workload{Node: "node-1", Container: "c-" + name, Namespace: "k8s.io", Image: "sha256:bad", Pod: name,
		PodNamespace: ns, PodUID: string(got.UID), ContainerName: "web", Application: "shop"}
}

// podExists: the pod is there and not being deleted (a pod bound to a
// node waits for its kubelet, absent here, to end its deletion).
func (e *env) podExists(ns, name string) bool {
	e.t.Helper()
	var p corev1.Pod
	err := e.kc.Get(e.t.Context(), podPath(ns, name), &p)
	if kube.IsNotFound(err) {
		return false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return p.DeletionTimestamp == nil
}

func (e *env) deploymentImage(ns, name string) (string, map[string]string) {
	e.t.Helper()
	var d appsv1.Deployment
	if err := e.kc.Get(e.t.Context(), "/apis/apps/v1/namespaces/"+ns+"/deployments/"+name, &d); err != nil {
		e.t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image, d.Annotations
}

// auditActions lists the audit log's actions on responses, in order.
func (e *env) auditActions() []string {
	e.t.Helper()
	rows, err := e.st.DB().QueryContext(e.t.Context(), `SELECT action, object FROM audit_log WHERE actor = ? ORDER BY seq`, Actor)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a, o string
		rows.Scan(&a, &o)
		out = append(out, a+" "+o)
	}
	return out
}
