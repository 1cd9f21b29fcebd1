package containerdtest

import (
	"fmt"
	"testing"

	"github.com/containerd/containerd/v2/client"
)

// StartCRI runs containerd (Start) with its CRI plugin on, as a kubelet's
// node has it: pods run with the sandbox image sandboxImage, images are
// pulled over plain HTTP from the registry at registryHost (an in-process
// one), no CNI (pods must use the node's network), and oom_score_adj is
// not lowered (this machine forbids it). A CRI client dials the returned
// address (unix://ADDR).
func StartCRI(t testing.TB, sandboxImage, registryHost string) (*client.Client, string) {
	t.Helper()
	return start(t, fmt.Sprintf(`[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$DIR/cni-bin"
    conf_dir = "$DIR/cni"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors.%q]
    endpoint = ["http://%s"]
`, sandboxImage, registryHost, registryHost))
}

// disabledCRI is the CRI plugin's entry of disabled_plugins unless cri
// configures it.
func disabledCRI(cri string) string {
	if cri != "" {
		return ""
	}
	return `"io.containerd.grpc.v1.cri", `
}
