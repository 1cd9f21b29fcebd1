package kube

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// ServiceAccounts resolves a pod's service account from the API server,
// for workload identity: the agent reports a pod's namespace, name and
// UID (CRI labels) but not its service account. A pod's service account
// cannot change, so answers are cached by pod UID.
type ServiceAccounts struct {
	Client *Client

	mu    sync.Mutex
	cache map[string]podBinding // by pod UID
}

type podBinding struct{ ns, name, node, sa string }

// maxCachedPods bounds the cache; it is emptied when full.
const maxCachedPods = 65536

// ServiceAccount is the service account of pod ns/pod, which must have
// UID uid and be bound to node: a pod that is gone, was replaced (another
// UID) or runs on another node is an error, never a guess.
func (s *ServiceAccounts) ServiceAccount(ctx context.Context, node, ns, pod, uid string) (string, error) {
	if uid == "" {
		return "", errors.New("the agent reported no pod UID")
	}
	want := podBinding{ns: ns, name: pod, node: node}
	s.mu.Lock()
	b, ok := s.cache[uid]
	s.mu.Unlock()
	if !ok {
		var p corev1.Pod
		path := "/api/v1/namespaces/" + url.PathEscape(ns) + "/pods/" + url.PathEscape(pod)
		if err := s.Client.Get(ctx, path, &p); err != nil {
			if IsNotFound(err) {
				return "", fmt.Errorf("pod %s/%s does not exist", ns, pod)
			}
			return "", fmt.Errorf("reading pod %s/%s: %w", ns, pod, err)
		}
		if string(p.UID) != uid {
			return "", fmt.Errorf("pod %s/%s has UID %s, not %s as the agent reported", ns, pod, p.UID, uid)
		}
		b = podBinding{ns: p.Namespace, name: p.Name, node: p.Spec.NodeName, sa: p.Spec.ServiceAccountName}
		if b.sa == "" {
			b.sa = "default"
		}
		if b.node == "" {
			// Not scheduled yet: not cached, it may be bound later.
			return "", fmt.Errorf("pod %s/%s is on no node yet", ns, pod)
		}
		s.mu.Lock()
		if s.cache == nil || len(s.cache) >= maxCachedPods {
			s.cache = map[string]podBinding{}
		}
		s.cache[uid] = b
		s.mu.Unlock()
	}
	if b.ns != want.ns || b.name != want.name {
		return "", fmt.Errorf("pod UID %s is pod %s/%s, not %s/%s", uid, b.ns, b.name, ns, pod)
	}
	if b.node != want.node {
		return "", fmt.Errorf("pod %s/%s runs on node %s, not on %s, whose agent asked", ns, pod, b.node, node)
	}
	return b.sa, nil
}
