package agente2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"sigs.k8s.io/yaml"

	"github.com/bulwark-sec/bulwark/internal/containerdtest"
	"github.com/bulwark-sec/bulwark/internal/k8stest"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
)

// agentImage is the image the chart runs in the test: the static
// bulwark-agent at the chart's default command path.
const agentImage = "bulwark.test/bulwark-agent:e2e"

// podOf is the pod the DaemonSet controller and the scheduler would make of
// ds on node: its template with spec.nodeName. The test cluster runs
// neither (k8stest starts the deployment and replicaset controllers
// only, and no scheduler), so the test does their part. hostNetwork: the
// test node has no CNI.
func podOf(t *testing.T, ds map[string]any, node string) string {
	t.Helper()
	tmpl, _ := dig(ds, "spec", "template").(map[string]any)
	meta, _ := tmpl["metadata"].(map[string]any)
	spec, _ := tmpl["spec"].(map[string]any)
	meta["name"] = "bulwark-agent-" + node
	meta["namespace"] = namespace
	spec["nodeName"] = node
	spec["hostNetwork"] = true
	b, err := yaml.Marshal(map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The chart's agent runs on a real kubelet node: the pod from the
// rendered DaemonSet (privileged, hostPID, the host paths) becomes Ready
// through its `bulwark-agent status` probe, proves its mechanism with the
// canary, turns its gate on and watches a second pod on the node: a
// drifted exec there is reported (detect, the chart's default) or refused
// with EPERM (prevent).
func TestChartAgentOnNode(t *testing.T) {
	k8stest.HelmBin(t)
	for _, tc := range []struct{ mode, state, verdict string }{
		{"detect", "detecting-only", "reported"},
		{"prevent", "enforcing (fanotify)", "refused"},
	} {
		t.Run(tc.mode, func(t *testing.T) { agentOnNode(t, tc.mode, tc.state, tc.verdict) })
	}
}

func agentOnNode(t *testing.T, mode, state, verdict string) {
	c := k8stest.Start(t)
	n := c.StartNode(t, "node-1")
	img := containerdtest.Image(t, map[string][]byte{"usr/local/bin/bulwark-agent": mustRead(t, buildAgent(t)), "tmp/": nil},
		"/usr/local/bin/bulwark-agent")
	n.Import(img, agentImage)

	// A real server that knows the agents by their pods' projected
	// service account tokens (the chart's default), reviewed by this
	// cluster: the pod has hostNetwork, so it reaches the loopback.
	srv := servertest.Start(t, server.Config{Kubeconfig: c.Kubeconfig, AgentServiceAccount: namespace + "/bulwark-agent"})
	values := fmt.Sprintf(`image: {repository: bulwark.test/bulwark-agent, tag: e2e, pullPolicy: Never}
containerdSocket: %s
hostInventory: false
metricsPort: 0
server: {url: %s}
`, n.Containerd, srv.URL) // gateCgroup auto: its gate holds this node's pods only (other tests' agents gate on this machine too)
	if mode != "detect" {
		values += "mode: " + mode + "\n"
	}
	out, err := k8stest.HelmTemplate(t, chartDir, release, namespace, values)
	if err != nil {
		t.Fatal(err)
	}
	objs := k8stest.Objects(t, out)
	c.MustKubectl("create", "namespace", namespace)
	c.MustKubectl("create", "namespace", "apps")
	for _, k := range []string{"ServiceAccount/bulwark-agent", "ConfigMap/bulwark-agent-config"} {
		b, _ := yaml.Marshal(objs[k])
		if _, err := c.KubectlStdin(string(b), "apply", "-f", "-"); err != nil {
			t.Fatalf("applying %s: %v", k, err)
		}
	}
	start := time.Now()
	if _, err := c.KubectlStdin(podOf(t, objs["DaemonSet/bulwark-agent"], n.Name), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KubectlStdin(`apiVersion: v1
kind: Pod
metadata: {name: victim, namespace: apps}
spec:
  nodeName: node-1
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: `+k8stest.PauseImage+`, imagePullPolicy: Never}]
`, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}

	agentPod := "bulwark-agent-" + n.Name
	deadline := time.Now().Add(120 * time.Second)
	for {
		ready, _ := c.Kubectl("get", "pod", agentPod, "-n", namespace, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if ready == "True" {
			break
		}
		if time.Now().After(deadline) {
			desc, _ := c.Kubectl("describe", "pod", agentPod, "-n", namespace)
			t.Fatalf("agent pod not Ready in 120 s\n%s\nagent log:\n%s\n%s", desc, podLog(c, namespace, agentPod), n.KubeletLog())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("agent pod Ready %s after creation", time.Since(start).Round(time.Millisecond))
	agentHeartbeats(t, c, srv, n.Name, agentPod)

	// The status file the probe read, from the pod's emptyDir on the node.
	uid := c.MustKubectl("get", "pod", agentPod, "-n", namespace, "-o", "jsonpath={.metadata.uid}")
	statusPath := filepath.Join(filepath.Dir(n.Containerd), "kubelet", "pods", uid, "volumes", "kubernetes.io~empty-dir", "run", "status.json")
	var st struct {
		Node, Mode, State string
		Canary            struct{ OK bool }
		Containers        []struct {
			ID, Namespace string
			Labels        map[string]string
		}
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(statusPath)
		if err == nil && json.Unmarshal(b, &st) == nil && watches(st.Containers, "apps", "victim") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent does not list pod apps/victim (%v): %+v\nagent log:\n%s", err, st, podLog(c, namespace, agentPod))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st.Node != n.Name {
		t.Errorf("node %q, want %q from the downward API", st.Node, n.Name)
	}
	if st.Mode != mode || !strings.HasPrefix(st.State, state) || !st.Canary.OK {
		t.Errorf("mode %q state %q canary ok %v: want %s, %s, the canary refused", st.Mode, st.State, st.Canary.OK, mode, state)
	}
	t.Logf("agent: node %s, mode %s, state %s, %d containers watched", st.Node, st.Mode, st.State, len(st.Containers))

	// The gate found the host's cgroup v2 (the chart mounts /sys/fs/cgroup:
	// without it the pod's own cgroup mounts hide the unified hierarchy of
	// a hybrid host and the gate stays off).
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(podLog(c, namespace, agentPod), `"msg":"gate on:`) {
		if time.Now().After(deadline) {
			t.Fatalf("the gate is not on in the pod:\n%s", podLog(c, namespace, agentPod))
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The chart's gateCgroup auto found this kubelet's pods' root from
	// the agent's own pod cgroup: the agent, a hostPID pod, is in that
	// scope and never held (its own cgroup), its readiness probe's `runc
	// exec` neither (it became Ready above).
	if want := `"cgroup":"/` + n.CgroupRoot + `/kubepods"`; !strings.Contains(podLogWhole(c, namespace, agentPod), want) {
		t.Fatalf("the gate's scope is not this kubelet's pods (%s):\n%s", want, podLogWhole(c, namespace, agentPod))
	}

	// Its own container (hostPID: its root looks like the host's to itself)
	// is known for what it is, not logged as an ERROR at every start.
	if log := podLogWhole(c, namespace, agentPod); strings.Contains(log, "its root filesystem is the host's") ||
		!strings.Contains(log, "not watching the agent's own container") {
		t.Fatalf("the agent's own container at start:\n%s", log)
	}

	t.Logf("agent RSS %s", agentRSS(t, ctx0(), n, agentPod))

	// A program written into the running victim and exec'd there (as
	// `kubectl exec` would, through containerd): reported as drift.
	id := containerOf(st.Containers, "apps", "victim", "c")
	ctx := ctx0()
	ctr, err := n.Client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	drifted := filepath.Join("/proc", fmt.Sprint(task.Pid()), "root", "drifted")
	if err := os.WriteFile(drifted, mustRead(t, buildAgent(t)), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := task.Exec(ctx, "drift", &specs.Process{Args: []string{"/drifted", "--log-level", "nope"}, Cwd: "/"}, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Delete(ctx)
	ch, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	code := uint32(126) // runc exec fails before the program runs when the exec is refused
	if err := p.Start(ctx); err == nil {
		code = (<-ch).ExitCode()
	} else if verdict != "refused" {
		t.Fatalf("the drifted exec did not start in %s: %v", mode, err)
	} else {
		t.Logf("the drifted exec refused: %v", err)
	}
	// bulwark-agent with a bad flag exits 2 when it runs (a refused runc
	// exec exits 1).
	if ran := code == 2; ran != (verdict == "reported") {
		t.Errorf("the drifted exec exited %d in %s", code, mode)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		log := podLog(c, namespace, agentPod)
		if i := strings.Index(log, `"msg":"drift","verdict":"`+verdict+`"`); i >= 0 && strings.Contains(log[i:], `"path":"/drifted"`) {
			line := log[i:]
			line, _, _ = strings.Cut(line, "\n")
			t.Logf("drift reported: %s", line)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no drift event for /drifted in the victim:\n%s", log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func watches(cs []struct {
	ID, Namespace string
	Labels        map[string]string
}, ns, pod string) bool {
	for _, c := range cs {
		if c.Labels["io.kubernetes.pod.namespace"] == ns && c.Labels["io.kubernetes.pod.name"] == pod {
			return true
		}
	}
	return false
}

func ctx0() context.Context {
	return namespaces.WithNamespace(context.Background(), k8stest.CRINamespace)
}

// agentRSS is VmRSS of the agent container's process, from the node.
func agentRSS(t *testing.T, ctx context.Context, n *k8stest.Node, pod string) string {
	t.Helper()
	cs, err := n.Client.Containers(ctx, `labels."io.kubernetes.pod.name"==`+pod+`,labels."io.kubernetes.container.name"==agent`)
	if err != nil || len(cs) != 1 {
		return fmt.Sprintf("unknown (%d containers, %v)", len(cs), err)
	}
	task, err := cs[0].Task(ctx, nil)
	if err != nil {
		return err.Error()
	}
	b, _ := os.ReadFile(filepath.Join("/proc", fmt.Sprint(task.Pid()), "status"))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// containerOf is the id of the container name of pod ns/pod.
func containerOf(cs []struct {
	ID, Namespace string
	Labels        map[string]string
}, ns, pod, name string) string {
	for _, c := range cs {
		if c.Labels["io.kubernetes.pod.namespace"] == ns && c.Labels["io.kubernetes.pod.name"] == pod && c.Labels["io.kubernetes.container.name"] == name {
			return c.ID
		}
	}
	return ""
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// podLogFiles are the kubelet's log files of a pod's containers.
func podLogFiles(c *k8stest.Cluster, ns, pod string) []string {
	uid, _ := c.Kubectl("get", "pod", pod, "-n", ns, "-o", "jsonpath={.metadata.uid}")
	files, _ := filepath.Glob(filepath.Join("/var/log/pods", ns+"_"+pod+"_"+uid, "*", "*.log"))
	return files
}

// podLogWhole is every line of the kubelet's log files of a pod's
// containers.
func podLogWhole(c *k8stest.Cluster, ns, pod string) string {
	var b strings.Builder
	for _, f := range podLogFiles(c, ns, pod) {
		data, _ := os.ReadFile(f)
		b.Write(data)
	}
	return b.String()
}

// podLog is the end of the kubelet's log files of a pod's containers
// (there is no kubectl logs: the API server has no kubelet client
// certificate).
func podLog(c *k8stest.Cluster, ns, pod string) string {
	var b strings.Builder
	for _, f := range podLogFiles(c, ns, pod) {
		data, _ := os.ReadFile(f)
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "== %s\n%s\n", f, data)
	}
	return b.String()
}

// agentHeartbeats waits until the server has node's heartbeat from the
// agent pod, authenticated by the token the kubelet projected into it:
// the audit names its service account, pod and node.
func agentHeartbeats(t *testing.T, c *k8stest.Cluster, srv *servertest.Server, node, pod string) {
	t.Helper()
	actor := fmt.Sprintf("serviceaccount:%s/bulwark-agent pod:%s/%s node:%s", namespace, namespace, pod, node)
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := srv.Call(t, srv.Admin, "GET", "/api/v1/audit?limit=1000", nil)
		if code == 200 && strings.Contains(body, `"actor": "`+actor+`"`) && strings.Contains(body, `"object": "node:`+node+`"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat of %s by %q in the audit (%d):\n%s\nagent log:\n%s", node, actor, code, body, podLog(c, namespace, pod))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, body := srv.Call(t, srv.Viewer, "GET", "/api/v1/nodes", nil); code != 200 || !strings.Contains(body, `"name": "`+node+`"`) {
		t.Errorf("nodes: %d %s", code, body)
	}
	t.Logf("the server has %s's heartbeat, by %s", node, actor)
}
