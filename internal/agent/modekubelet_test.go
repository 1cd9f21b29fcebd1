package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/k8stest"
)

// modePods are a bare pod asking for prevent by label and a Deployment
// whose pods are labelled tier=dev and ask for off, each container's /ctl
// a directory of its own under the host directory %[2]s.
const modePods = `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {bulwark.dev/runtime-mode: prevent}}
spec:
  nodeName: node-1
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  tolerations: [{operator: Exists}]
  containers:
  - {name: app, image: %[1]s, imagePullPolicy: Never, volumeMounts: [{name: ctl, mountPath: /ctl, subPath: web-app}]}
  volumes: [{name: ctl, hostPath: {path: %[2]s, type: Directory}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api, tier: dev, bulwark.dev/runtime-mode: "off"}}
    spec:
      nodeName: node-1
      hostNetwork: true
      terminationGracePeriodSeconds: 1
      tolerations: [{operator: Exists}]
      containers:
      - {name: app, image: %[1]s, imagePullPolicy: Never, volumeMounts: [{name: ctl, mountPath: /ctl, subPath: api-app}]}
      - {name: side, image: %[1]s, imagePullPolicy: Never, volumeMounts: [{name: ctl, mountPath: /ctl, subPath: api-side}]}
      volumes: [{name: ctl, hostPath: {path: %[2]s, type: Directory}}]
`

// TestPodLabelModesOnRealKubelet: the same rules as TestModeWithCRI on a
// real kubelet, whose pod labels, container labels and Deployment pod
// names (NAME-<pod-template-hash>-<suffix>) the agent reads from
// containerd: the pod labelled prevent refuses drift; the Deployment's
// pods, labelled tier=dev and off, stay in detect; its container side,
// selected by workload api and container name, refuses.
func TestPodLabelModesOnRealKubelet(t *testing.T) {
	cl := k8stest.Start(t)
	node := cl.StartNode(t, "node-1")
	cl.StartControllers(t)
	ref := "bulwark.test/probe:modes"
	node.Import(probeImage(t, buildProbe(t)), ref)
	rules, err := ParseModeRules("label:tier=dev mode=off, workload=api container=side mode=prevent")
	if err != nil {
		t.Fatal(err)
	}
	var col collector
	a, _ := startAgent(t, node.Containerd, ModeDetect, &col, func(cfg *Config) {
		cfg.Namespaces = []string{k8stest.CRINamespace}
		cfg.ModeRules = ModeRules{Rules: rules, ModeLabel: LabelRuntimeMode}
	})
	ctl, err := os.MkdirTemp("", "bwctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ctl) })
	for _, d := range []string{"web-app", "api-app", "api-side"} {
		if err := os.Mkdir(filepath.Join(ctl, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cl.MustKubectl("create", "namespace", "shop")
	if _, err := cl.KubectlStdin(fmt.Sprintf(modePods, ref, ctl), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		dir, pod, container, answer, verdict string
	}{
		{"web-app", "web", "app", "eperm", "refused"},
		{"api-app", "api-", "app", "ok", "reported"},
		{"api-side", "api-", "side", "eperm", "refused"},
	} {
		k := &ctr{sock: filepath.Join(ctl, w.dir, "ctl.sock")}
		for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if _, err := os.Stat(k.sock); err == nil {
				break
			}
			if time.Now().After(deadline) {
				desc, _ := cl.Kubectl("describe", "pods", "-n", "shop")
				t.Fatalf("%s did not come up in 90 s\n%s\n%s", w.dir, desc, node.KubeletLog())
			}
		}
		// The kubelet starts a container as soon as it is created; the
		// agent adopts it from the create event, meanwhile.
		for deadline := time.Now().Add(60 * time.Second); k.id == ""; time.Sleep(50 * time.Millisecond) {
			for _, c := range a.Containers() {
				if c.Labels[agentproto.LabelContainer] == w.container && strings.HasPrefix(c.Labels[agentproto.LabelPodName], w.pod) {
					k.id = c.ID
				}
			}
			if k.id == "" && time.Now().After(deadline) {
				t.Fatalf("%s: the agent does not watch it: %+v", w.dir, a.Containers())
			}
		}
		if got := k.do(t, "copy /bin/probe /tmp/drift"); got != "ok" {
			t.Fatalf("%s: copying a binary: %s", w.dir, got)
		}
		if got := k.do(t, "run /tmp/drift"); got != w.answer {
			t.Errorf("%s: a drifted exec: %s, want %s", w.dir, got, w.answer)
		}
		if e := col.find(k.id, w.verdict); e == nil {
			t.Errorf("%s: no %s event", w.dir, w.verdict)
		}
	}
}
