package k8stest

import (
	"strings"
	"testing"
	"time"
)

// A pod reaches Running on the real node (kubelet + containerd).
func TestNodeRunsAPod(t *testing.T) {
	c := Start(t)
	n := c.StartNode(t, "node-1")
	start := time.Now()
	c.MustKubectl("create", "namespace", "smoke")
	if _, err := c.KubectlStdin(`apiVersion: v1
kind: Pod
metadata: {name: p, namespace: smoke}
spec:
  nodeName: node-1
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  tolerations: [{operator: Exists}]
  containers: [{name: c, image: `+PauseImage+`, imagePullPolicy: Never}]
`, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _ := c.Kubectl("get", "pod", "p", "-n", "smoke", "-o", "jsonpath={.status.phase}")
		if strings.TrimSpace(out) == "Running" {
			break
		}
		if time.Now().After(deadline) {
			desc, _ := c.Kubectl("describe", "pod", "p", "-n", "smoke")
			t.Fatalf("pod not Running within 60 s: %q\n%s\n%s", out, desc, n.KubeletLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("pod Running %s after creation", time.Since(start).Round(time.Millisecond))
}
