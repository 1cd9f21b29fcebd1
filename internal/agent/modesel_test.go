package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/containerdtest"
)

// sandbox records a pod's sandbox container as containerd's CRI plugin
// does (the pod's labels, kind sandbox; no task needed here: the agent
// only reads its labels).
func sandbox(t *testing.T, ctx context.Context, c *client.Client, img client.Image, id, uid, pod string, labels map[string]string) {
	t.Helper()
	l := map[string]string{labelCRIKind: "sandbox", agentproto.LabelPodUID: uid, agentproto.LabelPodNamespace: "shop", agentproto.LabelPodName: pod}
	for k, v := range labels {
		l[k] = v
	}
	sb, err := c.NewContainer(ctx, id, client.WithImage(img), client.WithNewSpec(), client.WithContainerLabels(l))
	if err != nil {
		t.Fatalf("creating sandbox %s: %v", id, err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), testNS), 10*time.Second)
		defer cancel()
		sb.Delete(cctx)
	})
}

// criContainer is the spec options of a CRI container of a pod: the
// kubelet's labels and, when sandboxID is set, the CRI plugin's sandbox
// annotation (without it the agent finds the sandbox by pod UID); own are
// labels of the container itself, as the CRI copies its image's config
// labels.
func criContainer(uid, pod, name, sandboxID string, own map[string]string) []oci.SpecOpts {
	l := map[string]string{labelCRIKind: "container", agentproto.LabelPodUID: uid,
		agentproto.LabelPodNamespace: "shop", agentproto.LabelPodName: pod, agentproto.LabelContainer: name}
	for k, v := range own {
		l[k] = v
	}
	opts := []oci.SpecOpts{containerdtest.WithLabels(l)}
	if sandboxID != "" {
		opts = append(opts, oci.WithAnnotations(map[string]string{annotationSandboxID: sandboxID}))
	}
	return opts
}

// TestModeByPodLabelWithContainerd: three containers of one image in one
// namespace, the agent in detect with a rule that tries to turn pods
// labelled tier=dev off and one that tightens pods labelled team=pay:
//   - pod A's label bulwark.dev/runtime-mode=prevent (read from its
//     sandbox, found by the CRI annotation) tightens: a drifted exec fails
//     with EPERM and is reported refused;
//   - pod B (tier=dev, bulwark.dev/runtime-mode=off; sandbox found by pod
//     UID) cannot relax: it stays watched in detect, its drifted exec runs
//     and is reported; team=pay on its container itself (where the CRI
//     copies the image author's config labels) is not a pod label and
//     does not count;
//   - pod B's container named side is selected by name into prevent;
//   - a container of pod B whose annotation names pod A's sandbox does
//     not get pod A's labels (the sandbox must be of its pod UID).
func TestModeByPodLabelWithContainerd(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	img := importImage(t, ctx, c, probeImage(t, buildProbe(t)))
	sandbox(t, ctx, c, img, "sb-a", "uid-a", "web-a", map[string]string{"tier": "dev", LabelRuntimeMode: "prevent"})
	sandbox(t, ctx, c, img, "sb-b", "uid-b", "web-b", map[string]string{"tier": "dev", LabelRuntimeMode: "off"})

	rules, err := ParseModeRules("label:tier=dev mode=off, label:team=pay mode=prevent, namespace=shop container=side mode=prevent")
	if err != nil {
		t.Fatal(err)
	}
	var col collector
	a, _ := startAgent(t, addr, ModeDetect, &col, func(cfg *Config) {
		cfg.ModeRules = ModeRules{Rules: rules, ModeLabel: LabelRuntimeMode}
	})
	pa := create(t, ctx, c, img, "a", criContainer("uid-a", "web-a", "app", "sb-a", nil)...)
	pb := create(t, ctx, c, img, "b", criContainer("uid-b", "web-b", "app", "", map[string]string{"team": "pay"})...)
	ps := create(t, ctx, c, img, "s", criContainer("uid-b", "web-b", "side", "", nil)...)
	px := create(t, ctx, c, img, "x", criContainer("uid-b", "web-b", "app", "sb-a", nil)...)
	for _, k := range []*ctr{pa, pb, ps, px} {
		waitWatched(t, a, k.id)
		k.start(t, ctx)
		if got := k.do(t, "copy /bin/probe /tmp/drift"); got != "ok" {
			t.Fatalf("copying a binary into %s: %s", k.id, got)
		}
	}
	for _, w := range []struct {
		k       *ctr
		answer  string
		verdict string
	}{{pa, "eperm", "refused"}, {pb, "ok", "reported"}, {ps, "eperm", "refused"}, {px, "ok", "reported"}} {
		if got := w.k.do(t, "run /tmp/drift"); got != w.answer {
			t.Errorf("container %s: a drifted exec: %s, want %s", w.k.id, got, w.answer)
		}
		if e := col.find(w.k.id, w.verdict); e == nil {
			t.Errorf("container %s: no %s event", w.k.id, w.verdict)
		}
	}
	modes := map[string]string{}
	for _, c := range a.Containers() {
		modes[c.ID] = c.Mode
	}
	if modes["a"] != "prevent" || modes["b"] != "detect" || modes["s"] != "prevent" || modes["x"] != "detect" {
		t.Errorf("the containers' modes in the status and heartbeat: %v", modes)
	}
	hb := a.Heartbeat(nil)
	hb.Node = "n1"
	if err := hb.Validate(); err != nil {
		t.Errorf("the heartbeat: %v", err)
	}
	hb.Containers[0].Mode = "enforce"
	if err := hb.Validate(); err == nil || !strings.Contains(err.Error(), `mode "enforce"`) {
		t.Errorf("a heartbeat with a container in mode enforce: %v", err)
	}
	if st, _ := a.Enforcement(); st != agentproto.StateEnforcingFanotify {
		t.Errorf("a node in detect with a container tightened to prevent: %q, want %q", st, agentproto.StateEnforcingFanotify)
	}
}
