package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/containerdtest"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
)

// criNode drives containerd's CRI plugin as a kubelet does.
type criNode struct {
	t     *testing.T
	rt    cri.RuntimeServiceClient
	image string // the probe image's reference
}

// pod runs a pod sandbox on the node's network with the kubelet's labels
// and labels; it is removed when the test ends.
func (n *criNode) pod(ctx context.Context, name, uid string, labels map[string]string) (string, *cri.PodSandboxConfig) {
	n.t.Helper()
	l := map[string]string{agentproto.LabelPodName: name, agentproto.LabelPodNamespace: "shop", agentproto.LabelPodUID: uid}
	for k, v := range labels {
		l[k] = v
	}
	cfg := &cri.PodSandboxConfig{Metadata: &cri.PodSandboxMetadata{Name: name, Namespace: "shop", Uid: uid}, Labels: l,
		LogDirectory: n.t.TempDir(),
		Linux: &cri.LinuxPodSandboxConfig{SecurityContext: &cri.LinuxSandboxSecurityContext{
			NamespaceOptions: &cri.NamespaceOption{Network: cri.NamespaceMode_NODE}}}}
	r, err := n.rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		n.t.Fatalf("running pod %s: %v", name, err)
	}
	n.t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		n.rt.StopPodSandbox(cctx, &cri.StopPodSandboxRequest{PodSandboxId: r.PodSandboxId})
		n.rt.RemovePodSandbox(cctx, &cri.RemovePodSandboxRequest{PodSandboxId: r.PodSandboxId})
	})
	return r.PodSandboxId, cfg
}

// container creates a probe container named name in a pod (the kubelet's
// container labels, /ctl bound to a directory of the host).
func (n *criNode) container(ctx context.Context, sandboxID string, pod *cri.PodSandboxConfig, name string) *ctr {
	n.t.Helper()
	ctl, err := os.MkdirTemp("", "bwctl")
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { os.RemoveAll(ctl) })
	m := pod.Metadata
	r, err := n.rt.CreateContainer(ctx, &cri.CreateContainerRequest{PodSandboxId: sandboxID, SandboxConfig: pod, Config: &cri.ContainerConfig{
		Metadata: &cri.ContainerMetadata{Name: name}, Image: &cri.ImageSpec{Image: n.image}, LogPath: name + ".log",
		Labels: map[string]string{agentproto.LabelContainer: name, agentproto.LabelPodName: m.Name, agentproto.LabelPodNamespace: m.Namespace, agentproto.LabelPodUID: m.Uid},
		Mounts: []*cri.Mount{{ContainerPath: "/ctl", HostPath: ctl}}}})
	if err != nil {
		n.t.Fatalf("creating container %s of pod %s: %v", name, m.Name, err)
	}
	return &ctr{id: r.ContainerId, sock: filepath.Join(ctl, "ctl.sock")}
}

// start starts a created container and waits for its probe.
func (n *criNode) start(ctx context.Context, k *ctr) {
	n.t.Helper()
	if _, err := n.rt.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: k.id}); err != nil {
		n.t.Fatalf("starting %s: %v", k.id, err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(k.sock); err == nil {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("the probe of %s did not come up", k.id)
		}
	}
}

// TestModeWithCRI runs pods through containerd's own CRI plugin (Debian's
// containerd 1.6, as a kubelet drives it), which puts a pod's labels on
// its sandbox container only, and the sandbox's id in its containers'
// spec annotations. The agent in detect, with rules "label:tier=dev
// mode=off" and "workload=api container=side mode=prevent":
//   - pod web (label bulwark.dev/runtime-mode=prevent): its container's
//     drifted exec fails with EPERM;
//   - pod api (tier=dev, bulwark.dev/runtime-mode=off): neither label
//     relaxes detect: its container app's drifted exec runs, reported;
//   - its container side (workload api from the pod-template-hash, the
//     container name from the kubelet's label) is refused.
func TestModeWithCRI(t *testing.T) {
	reg := registrytest.New(t)
	reg.Push(t, "pause:1", containerdtest.Image(t, map[string][]byte{"pause": containerdtest.BuildStatic(t, "github.com/bulwark-sec/bulwark/internal/k8stest/pause")}, "/pause"))
	reg.Push(t, "probe:1", probeImage(t, buildProbe(t)))
	_, addr := containerdtest.StartCRI(t, reg.Ref("pause:1"), reg.Host)
	conn, err := grpc.NewClient("unix://"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := &criNode{t: t, rt: cri.NewRuntimeServiceClient(conn), image: reg.Ref("probe:1")}
	if _, err := cri.NewImageServiceClient(conn).PullImage(ctx, &cri.PullImageRequest{Image: &cri.ImageSpec{Image: n.image}}); err != nil {
		t.Fatalf("pulling %s through the CRI: %v", n.image, err)
	}
	rules, err := ParseModeRules("label:tier=dev mode=off, workload=api container=side mode=prevent")
	if err != nil {
		t.Fatal(err)
	}
	var col collector
	a, _ := startAgent(t, addr, ModeDetect, &col, func(cfg *Config) {
		cfg.Namespaces = []string{"k8s.io"} // the CRI's
		cfg.ModeRules = ModeRules{Rules: rules, ModeLabel: LabelRuntimeMode}
	})
	webID, web := n.pod(ctx, "web-1", "uid-web", map[string]string{LabelRuntimeMode: "prevent"})
	apiID, api := n.pod(ctx, "api-5d9f7-x2x7q", "uid-api", map[string]string{"pod-template-hash": "5d9f7", "tier": "dev", LabelRuntimeMode: "off"})
	cw := n.container(ctx, webID, web, "app")
	ca := n.container(ctx, apiID, api, "app")
	cs := n.container(ctx, apiID, api, "side")
	for _, k := range []*ctr{cw, ca, cs} {
		n.start(ctx, k)
		waitWatched(t, a, k.id)
		if got := k.do(t, "copy /bin/probe /tmp/drift"); got != "ok" {
			t.Fatalf("copying a binary into %s: %s", k.id, got)
		}
	}
	for _, w := range []struct {
		name, answer, verdict string
		k                     *ctr
	}{{"web/app", "eperm", "refused", cw}, {"api/app", "ok", "reported", ca}, {"api/side", "eperm", "refused", cs}} {
		if got := w.k.do(t, "run /tmp/drift"); got != w.answer {
			t.Errorf("%s: a drifted exec: %s, want %s", w.name, got, w.answer)
		}
		if e := col.find(w.k.id, w.verdict); e == nil {
			t.Errorf("%s: no %s event", w.name, w.verdict)
		}
	}
}
