package k8stest

import (
	"fmt"
	"strings"
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
