package k8stest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// PodToken mints a service account token of ns/sa for audience, bound to
// pod ns/pod (the TokenRequest API, as the kubelet's projected volumes
// do): valid for ttl (at least 10 minutes), and no longer once the pod is
// gone.
func (c *Cluster) PodToken(ns, sa, pod, audience string, ttl time.Duration) (string, error) {
	out, err := c.Kubectl("create", "token", sa, "-n", ns, "--audience", audience,
		"--bound-object-kind", "Pod", "--bound-object-name", pod, fmt.Sprintf("--duration=%ds", int(ttl.Seconds())))
	if err != nil {
		return "", fmt.Errorf("minting a token of %s/%s bound to pod %s: %w", ns, sa, pod, err)
	}
	return strings.TrimSpace(out), nil
}

// UnreachableKubeconfig is a copy of the cluster's kubeconfig naming an
// address of 127.0.0.1 where nothing listens: the cluster unreachable to
// its client, with the credentials unchanged.
func (c *Cluster) UnreachableKubeconfig(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	b, err := os.ReadFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), strings.TrimPrefix(c.Server, "https://"), dead, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ServiceAccountPod creates namespace ns and its service account sa when
// they do not exist, and pod ns/pod of sa bound to node (an object only: no
// kubelet needs to run it), and returns the pod's UID.
func (c *Cluster) ServiceAccountPod(t testing.TB, ns, sa, pod, node string) string {
	t.Helper()
	_, err := c.KubectlStdin(fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: %[2]s, namespace: %[1]s}
---
apiVersion: v1
kind: Pod
metadata: {name: %[3]s, namespace: %[1]s}
spec:
  serviceAccountName: %[2]s
  nodeName: %[4]s
  containers: [{name: c, image: registry.example/app}]
`, ns, sa, pod, node), "apply", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	return c.MustKubectl("get", "pod", pod, "-n", ns, "-o", "jsonpath={.metadata.uid}")
}
