package agent

import (
	"testing"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/identity"
)

// TestWorkloadOfCarriesPodUID: the agent names a pod's container by the
// pod's namespace, name and UID (the CRI labels), so the server can check
// the pod it resolves a service account from is this one; it sends no
// other label and no service account of its own.
func TestWorkloadOfCarriesPodUID(t *testing.T) {
	n := &identityNode{node: "node-1"}
	c := &container{id: "c1", namespace: "k8s.io", image: "sha256:aa", labels: map[string]string{
		agentproto.LabelPodNamespace: "shop", agentproto.LabelPodName: "pay-1", agentproto.LabelPodUID: "u-1",
		"io.kubernetes.pod.serviceaccount": "cluster-admin"}}
	w := n.workloadOf(c)
	if w.Namespace != "shop" || w.Pod != "pay-1" || w.Labels[identity.LabelPodUID] != "u-1" || len(w.Labels) != 1 || w.ServiceAccount != "" {
		t.Fatalf("workload %+v", w)
	}
	if w := n.workloadOf(&container{id: "c2", namespace: "default", image: "sha256:aa"}); w.Labels != nil || w.Pod != "" || w.Namespace != "default" {
		t.Fatalf("plain containerd container: %+v", w)
	}
}
