package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/containerdtest"
	"github.com/bulwark-sec/bulwark/internal/k8stest"
	"github.com/bulwark-sec/bulwark/internal/kube"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/store"
)

const deployments = 100

func lodashImage(b *testing.B, version string, age time.Duration) v1.Image {
	img, err := containerdtest.ImageOf(map[string][]byte{"app/node_modules/lodash/package.json": fmt.Appendf(nil, `{"name": "lodash", "version": %q}`, version)}, []string{"/app"})
	if err != nil {
		b.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: time.Now().Add(-age)}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		b.Fatal(err)
	}
	return img
}

type client struct {
	b    *testing.B
	base string
}

func (c *client) call(method, path, token string, body any, want int, out any) {
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.b.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.b.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		json.Unmarshal(raw, out)
	}
}

// BenchmarkAdvisoryToRollback: 100 Deployments (one pod each, reported by
// an agent heartbeat) run a certified digest; an advisory import revokes
// it; measured: from the import request to the last of the 100
// Deployments patched to the rollback target, as the API server shows
// them. Server side only: no kubelet (the pods are API objects). Run it
// with -benchtime 1x: one iteration is the whole story.
func BenchmarkAdvisoryToRollback(b *testing.B) { advisoryToRollback(b, false) }

// BenchmarkLateWorkloadsToRollback: the same 100 Deployments, whose pods
// the running inventory does not list when the advisory import revokes
// their digest (nothing answered then); measured: from the heartbeat that
// brings the 100 pods to the last Deployment rolled back (the revocation's
// respond job queued again, internal/server lateRevocations).
func BenchmarkLateWorkloadsToRollback(b *testing.B) { advisoryToRollback(b, true) }

func advisoryToRollback(b *testing.B, late bool) {
	cl := k8stest.Start(b)
	kc, err := kube.Load(cl.Kubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := registrytest.New(b)
	good, bad := lodashImage(b, "4.17.21", time.Hour), lodashImage(b, "4.17.15", time.Minute)
	reg.Push(b, "shop/web:1", good)
	reg.Push(b, "shop/web:2", bad)
	gd, _ := good.Digest()
	bd, _ := bad.Digest()
	repo := reg.Host + "/shop/web"
	goodRef, badRef := repo+"@"+gd.String(), repo+"@"+bd.String()

	// 100 Deployments, their ReplicaSets and pods, as controllers would
	// make them; one heartbeat names the pods.
	if err := kc.Create(ctx, "/api/v1/namespaces", corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, nil); err != nil {
		b.Fatal(err)
	}
	hb := agentproto.Heartbeat{Node: "node-1", Mode: "prevent", State: agentproto.StateEnforcingFanotify}
	for i := range deployments {
		name := fmt.Sprintf("app-%03d", i)
		labels := map[string]string{"app": name}
		tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: badRef}}}}
		var d appsv1.Deployment
		if err := kc.Create(ctx, "/apis/apps/v1/namespaces/shop/deployments", appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}, &d); err != nil {
			b.Fatal(err)
		}
		var rs appsv1.ReplicaSet
		if err := kc.Create(ctx, "/apis/apps/v1/namespaces/shop/replicasets", appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name + "-rs",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: name, UID: d.UID, Controller: ptr.To(true)}}},
			Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}, &rs); err != nil {
			b.Fatal(err)
		}
		var p corev1.Pod
		if err := kc.Create(ctx, "/api/v1/namespaces/shop/pods", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name + "-0", Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{NodeName: "node-1", Containers: tmpl.Spec.Containers}}, &p); err != nil { // bound to the reporting node
			b.Fatal(err)
		}
		hb.Containers = append(hb.Containers, agentproto.Container{ID: fmt.Sprintf("c%03d", i), Namespace: "k8s.io", Image: bd.String(),
			Labels: map[string]string{agentproto.LabelPodName: p.Name, agentproto.LabelPodNamespace: "shop", agentproto.LabelPodUID: string(p.UID), agentproto.LabelContainer: "web"}})
	}

	dir, feed := b.TempDir(), b.TempDir()
	pol := filepath.Join(dir, "responses.yaml")
	os.WriteFile(pol, []byte("rateLimit: {perNamespace: 1000}\ndefault: {revoked: rollback}\n"), 0o600)
	gate := filepath.Join(dir, "policy.yaml")
	os.WriteFile(gate, []byte("name: vulns\nbuiltins:\n  vulnerabilities: {maxSeverity: HIGH}\n  image-age: {enabled: false}\n  non-root: {enabled: false}\n  lean: {enabled: false}\n  required-labels: {enabled: false}\n  secrets: {enabled: false}\n  package-pins: {enabled: false}\n  base-image: {enabled: false}\n"), 0o600)
	st, err := server.OpenStore(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	admin, err := api.CreateToken(ctx, api.NewAuditor(st, audit.AnchorPath(server.DBPath(dir))), "bench", "root", store.RoleAdmin)
	st.Close()
	if err != nil {
		b.Fatal(err)
	}
	ready, done := make(chan net.Addr, 1), make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Config{DataDir: dir, Listen: "127.0.0.1:0", PollInterval: 100 * time.Millisecond, Policy: gate,
			AdvisorySources: []string{"npm=" + feed}, ResponsePolicy: pol, Kubeconfig: cl.Kubeconfig, AllowPrivate: []string{"127.0.0.1"},
			Ready: func(a net.Addr) { ready <- a }, Logger: slog.New(slog.DiscardHandler)})
	}()
	defer func() { cancel(); <-done }()
	c := &client{b: b, base: "http://" + (<-ready).String()}
	for _, tag := range []string{"shop/web:1", "shop/web:2"} {
		var acc struct{ Job int64 }
		c.call("POST", "/api/v1/scans", admin.Token, map[string]string{"image": reg.Ref(tag)}, http.StatusAccepted, &acc)
		for j := (store.Job{}); j.State != store.JobDone; time.Sleep(20 * time.Millisecond) {
			c.call("GET", fmt.Sprintf("/api/v1/jobs/%d", acc.Job), admin.Token, nil, http.StatusOK, &j)
		}
	}
	for _, d := range []string{gd.String(), bd.String()} {
		c.call("POST", "/api/v1/images/"+d+"/certification", admin.Token, map[string]string{"status": "certified"}, http.StatusOK, nil)
	}
	if late {
		c.call("POST", agentproto.HeartbeatPath, admin.Token, agentproto.Heartbeat{Node: hb.Node, Mode: hb.Mode, State: hb.State}, http.StatusOK, nil)
	} else {
		c.call("POST", agentproto.HeartbeatPath, admin.Token, hb, http.StatusOK, nil)
	}
	rec, err := os.ReadFile(filepath.Join("..", "..", "internal", "match", "testdata", "osv", "GHSA-35jh-r3h4-6jhm.json"))
	if err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(feed, "GHSA-35jh-r3h4-6jhm.json"), rec, 0o644)
	time.Sleep(time.Second) // the running image described

	b.ResetTimer()
	start := time.Now()
	c.call("POST", "/api/v1/advisories/import", admin.Token, map[string]any{"sources": []string{"npm"}}, http.StatusOK, nil)
	imported := time.Since(start)
	if late {
		time.Sleep(time.Second) // the revocation answered, nothing listed
		start = time.Now()
		c.call("POST", agentproto.HeartbeatPath, admin.Token, hb, http.StatusOK, nil)
	}
	var first time.Duration
	for {
		var list appsv1.DeploymentList
		if err := kc.Get(ctx, "/apis/apps/v1/namespaces/shop/deployments", &list); err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, d := range list.Items {
			if d.Spec.Template.Spec.Containers[0].Image == goodRef {
				n++
			}
		}
		if n > 0 && first == 0 {
			first = time.Since(start)
		}
		if n == deployments {
			break
		}
		if time.Since(start) > 60*time.Second {
			b.Fatalf("%d of %d rolled back after 60 s", n, deployments)
		}
		time.Sleep(10 * time.Millisecond)
	}
	total := time.Since(start)
	b.StopTimer()
	if late {
		b.ReportMetric(total.Seconds(), "s-heartbeat-to-100-rollbacks")
		b.ReportMetric(first.Seconds(), "s-heartbeat-to-first-rollback")
		return
	}
	b.ReportMetric(total.Seconds(), "s-import-to-100-rollbacks")
	b.ReportMetric(imported.Seconds(), "s-import-request")
	b.ReportMetric(first.Seconds(), "s-import-to-first-rollback")
}
