package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/containerdtest"
	"github.com/bulwark-sec/bulwark/internal/k8stest"
	"github.com/bulwark-sec/bulwark/internal/kube"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// TestAllowlistClaimCorroborated: with a cluster (--kubeconfig, a real
// kube-apiserver), a node's heartbeat claim is not enough to read the
// file table of an uncertified digest (it was: TestAllowlistOfAClaimedDigest
// in internal/api shows the server without a cluster). The node-1 token
// claims the digest: 403 while no pod of node-1 runs it in the
// kubelet's word (none at all; one on node-2 that does; one on node-1 by
// tag with no status yet), 200 once its pod's status reports the digest.
// An unknown digest claimed is 403, the same answer: no probing.
func TestAllowlistClaimCorroborated(t *testing.T) {
	cl := k8stest.Start(t)
	kc, err := kube.Load(cl.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	reg := registrytest.New(t)
	img := containerdtest.Image(t, map[string][]byte{"bin/app": []byte("\x7fELF app")}, "/bin/app")
	reg.Push(t, "shop/app:1", img)
	digest := digestOf(t, img)

	dir := t.TempDir()
	admin := bootstrap(t, dir)
	c, stop := startServerWith(t, dir, func(cfg *Config) { cfg.WatchInterval, cfg.Kubeconfig = time.Hour, cl.Kubeconfig })
	defer stop()
	waitScan(t, c, admin.Token, reg.Host+"/shop/app:1")
	c.json("POST", "/api/v1/images/"+digest+"/certification", admin.Token, map[string]string{"status": store.NotCertified}, http.StatusOK, nil)
	var node1 api.TokenCreated
	c.json("POST", "/api/v1/tokens", admin.Token, map[string]string{"name": api.NodeTokenPrefix + "node-1", "role": "operator"}, http.StatusCreated, &node1)

	unknown := "sha256:" + strings.Repeat("e", 64)
	hb := heartbeat("node-1", digest, "app-1")
	hb.Containers = append(hb.Containers, agentproto.Container{ID: "forged", Namespace: "k8s.io", Image: unknown, Started: time.Now().UTC()})
	c.json("POST", agentproto.HeartbeatPath, node1.Token, hb, http.StatusOK, nil)
	ask := func(what, d string, want int) {
		t.Helper()
		code, body := c.do("GET", agentproto.AllowlistPath+d+"?node=node-1", node1.Token, nil)
		if code != want || (want != http.StatusOK) == strings.Contains(string(body), "/bin/app") {
			t.Errorf("%s: %d %s, want %d", what, code, body, want)
		}
	}
	ask("claimed, no pod at all", digest, http.StatusForbidden)
	ask("unknown, claimed, no pod", unknown, http.StatusForbidden)

	ctx := t.Context()
	if err := kc.Create(ctx, "/api/v1/namespaces", corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, nil); err != nil {
		t.Fatal(err)
	}
	pod := func(name, node string) {
		t.Helper()
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "web", Image: reg.Host + "/shop/app:1"}}}}
		if err := kc.Create(ctx, "/api/v1/namespaces/shop/pods", p, nil); err != nil {
			t.Fatal(err)
		}
	}
	kubeletSays := func(name, imageID string) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"status": map[string]any{"phase": "Running", "containerStatuses": []map[string]any{{
			"name": "web", "image": reg.Host + "/shop/app:1", "imageID": imageID, "ready": true, "restartCount": 0}}}})
		if err := kc.Patch(ctx, "/api/v1/namespaces/shop/pods/"+name+"/status", kube.MergePatch, b, nil); err != nil {
			t.Fatal(err)
		}
	}
	pod("elsewhere", "node-2")
	kubeletSays("elsewhere", reg.Host+"/shop/app@"+digest)
	ask("claimed, a pod of another node runs it", digest, http.StatusForbidden)
	pod("app-1", "node-1")
	ask("claimed, a pod of the node by tag, no status yet", digest, http.StatusForbidden)
	kubeletSays("app-1", reg.Host+"/shop/app@sha256:"+strings.Repeat("0", 64))
	ask("claimed, the node's kubelet reports another digest", digest, http.StatusForbidden)
	kubeletSays("app-1", reg.Host+"/shop/app@"+digest)
	ask("claimed, the node's kubelet reports it", digest, http.StatusOK)
	ask("unknown, claimed, no pod", unknown, http.StatusForbidden)
}
