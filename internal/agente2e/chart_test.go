package agente2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/k8stest"
)

const (
	chartDir  = "../../deploy/helm/bulwark-agent"
	namespace = "bulwark-system"
	release   = "bulwark-agent"
)

var dig = k8stest.Dig

func render(t *testing.T, values string, extra ...string) map[string]map[string]any {
	t.Helper()
	out, err := k8stest.HelmTemplate(t, chartDir, release, namespace, values, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return k8stest.Objects(t, out)
}

// podSpec is the DaemonSet's pod spec and its one container.
func podSpec(t *testing.T, objs map[string]map[string]any) (spec, ctr map[string]any) {
	t.Helper()
	ds, ok := objs["DaemonSet/bulwark-agent"]
	if !ok {
		t.Fatalf("no DaemonSet/bulwark-agent in %v", keys(objs))
	}
	spec, _ = dig(ds, "spec", "template", "spec").(map[string]any)
	ctr, _ = dig(spec, "containers", 0).(map[string]any)
	if spec == nil || ctr == nil {
		t.Fatal("DaemonSet without a pod spec or container")
	}
	return spec, ctr
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// byName indexes a list of named maps (volumes, mounts, env).
func byName(l any) map[string]map[string]any {
	out := map[string]map[string]any{}
	s, _ := l.([]any)
	for _, e := range s {
		if m, ok := e.(map[string]any); ok {
			out[fmt.Sprint(m["name"])] = m
		}
	}
	return out
}

var (
	agentOnce sync.Once
	agentBin  string
	agentErr  error
)

// buildAgent builds cmd/bulwark-agent once per test binary (static, to
// run in a scratch image too).
func buildAgent(t *testing.T) string {
	t.Helper()
	agentOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bwagentbin")
		if err != nil {
			agentErr = err
			return
		}
		agentBin = filepath.Join(dir, "bulwark-agent")
		cmd := exec.Command("go", "build", "-trimpath", "-o", agentBin, "../../cmd/bulwark-agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			agentErr = fmt.Errorf("building bulwark-agent: %v: %s", err, out)
		}
	})
	if agentErr != nil {
		t.Fatal(agentErr)
	}
	return agentBin
}

// The default rendering: what the agent needs on a node and nothing it
// must not have (no API token, no plain token value, detect, no degrade).
func TestChartDefaults(t *testing.T) {
	k8stest.HelmBin(t)
	objs := render(t, "image:\n  repository: registry.example/bulwark-agent\n  tag: \"1\"\n")
	spec, ctr := podSpec(t, objs)

	if spec["hostPID"] != true {
		t.Error("hostPID is not true: the agent reads /proc/PID/root of containers")
	}
	if spec["automountServiceAccountToken"] != false || dig(objs["ServiceAccount/bulwark-agent"], "automountServiceAccountToken") != false {
		t.Error("a service account token is mounted: the agent never calls the API server")
	}
	if spec["hostNetwork"] == true {
		t.Error("hostNetwork: the loopback metrics would be the node's")
	}
	if spec["priorityClassName"] != "system-node-critical" {
		t.Errorf("priorityClassName %v", spec["priorityClassName"])
	}
	if got := fmt.Sprint(spec["tolerations"]); got != "[map[operator:Exists]]" {
		t.Errorf("tolerations %s: want every taint tolerated", got)
	}
	if dig(ctr, "securityContext", "privileged") != true {
		t.Error("not privileged: fanotify needs CAP_SYS_ADMIN, BPF its capabilities")
	}
	if ctr["image"] != "registry.example/bulwark-agent:1" {
		t.Errorf("image %v", ctr["image"])
	}
	if got := fmt.Sprint(dig(ctr, "resources", "limits", "memory")); got != "128Mi" {
		t.Errorf("memory limit %s", got)
	}
	if got := fmt.Sprint(dig(ctr, "readinessProbe", "exec", "command")); got != "[/usr/local/bin/bulwark-agent status --status-file /run/bulwark-agent/status.json]" {
		t.Errorf("readiness %s", got)
	}

	// The node's name from the downward API, into --node.
	env := byName(ctr["env"])
	if got := dig(env["NODE_NAME"], "valueFrom", "fieldRef", "fieldPath"); got != "spec.nodeName" {
		t.Errorf("NODE_NAME from %v, want the downward API's spec.nodeName", got)
	}
	args := fmt.Sprint(ctr["args"])
	if !strings.Contains(args, "--node=$(NODE_NAME)") || !strings.Contains(args, "--config=/etc/bulwark-agent/config/agent.yaml") {
		t.Errorf("args %s", args)
	}
	if strings.Contains(args, "token") {
		t.Errorf("a token without a server: %s", args)
	}
	for _, e := range env {
		if strings.Contains(strings.ToLower(fmt.Sprint(e["name"])), "token") {
			t.Errorf("a token in the environment: %v", e)
		}
	}

	// The host paths and where they land.
	vols, mounts := byName(spec["volumes"]), byName(ctr["volumeMounts"])
	for _, w := range []struct{ vol, host, at string }{
		{"containerd", "/run/containerd/containerd.sock", "/run/containerd/containerd.sock"},
		{"bpffs", "/sys/fs/bpf", "/sys/fs/bpf"},
		{"cgroup", "/sys/fs/cgroup", "/sys/fs/cgroup"},
		{"securityfs", "/sys/kernel/security", "/sys/kernel/security"},
		{"tracefs", "/sys/kernel/tracing", "/sys/kernel/tracing"},
		{"state", "/var/lib/bulwark-agent", "/var/lib/bulwark-agent"},
		{"host-root", "/", "/host"},
	} {
		if got := dig(vols[w.vol], "hostPath", "path"); got != w.host {
			t.Errorf("volume %s: hostPath %v, want %s", w.vol, got, w.host)
		}
		if got := dig(mounts[w.vol], "mountPath"); got != w.at {
			t.Errorf("volume %s mounted at %v, want %s", w.vol, got, w.at)
		}
	}
	if dig(mounts["host-root"], "readOnly") != true {
		t.Error("the host's / is mounted writable")
	}
	if _, ok := vols["host-run"]; ok {
		t.Error("/run/bulwark mounted without the Workload API or secret volumes")
	}
	if _, ok := vols["token"]; ok {
		t.Error("a token volume without a server")
	}
	for k := range objs {
		if strings.HasPrefix(k, "Secret/") || strings.HasPrefix(k, "Role") || strings.HasPrefix(k, "ClusterRole") {
			t.Errorf("%s rendered by default", k)
		}
	}

	cfg := fmt.Sprint(dig(objs["ConfigMap/bulwark-agent-config"], "data", "agent.yaml"))
	for _, want := range []string{"mode: detect\n", "allow-degrade: false\n", "mechanism: auto\n", "namespaces: k8s.io\n",
		"containerd-address: /run/containerd/containerd.sock\n", "host-root: /host\n", "metrics-address: 127.0.0.1:9464\n",
		"spool-dir: /var/lib/bulwark-agent/spool\n", "gate-cgroup: auto\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("agent.yaml lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(cfg, "server:") {
		t.Errorf("a server without server.url:\n%s", cfg)
	}
	agentReadsConfig(t, cfg)
}

// agentReadsConfig runs the real bulwark-agent on the chart's config file
// with a bad --mode (the command line wins over the file): it must get past
// the file (an unknown key or a bad value would be the error) and stop at
// the mode.
func agentReadsConfig(t *testing.T, cfg string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(buildAgent(t), "--config", f, "--mode", "not-a-mode")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(errb.String(), "not-a-mode") {
		t.Errorf("bulwark-agent on the chart's config: %v: %s", err, errb.String())
	}
}

// prevent with a server and an existing Secret: the token comes from the
// Secret as a file, the rendering applies to a real API server.
func TestChartPreventServerExistingSecret(t *testing.T) {
	k8stest.HelmBin(t)
	values := `image:
  repository: registry.example/bulwark-agent
  digest: sha256:` + strings.Repeat("ab", 32) + `
mode: prevent
modeRules: ["namespace=payments mode=prevent", "namespace=dev* mode=detect"]
server:
  url: https://bulwark.bulwark-system:8480
  auth: staticTokens
  existingSecret: agent-tokens
  existingSecretPerNode: true
workloadAPI:
  enabled: true
extraConfig:
  learn: 10m
`
	out, err := k8stest.HelmTemplate(t, chartDir, release, namespace, values)
	if err != nil {
		t.Fatal(err)
	}
	objs := k8stest.Objects(t, out)
	spec, ctr := podSpec(t, objs)
	if ctr["image"] != "registry.example/bulwark-agent@sha256:"+strings.Repeat("ab", 32) {
		t.Errorf("image %v: the digest must win", ctr["image"])
	}
	if _, ok := objs["Secret/bulwark-agent-token"]; ok {
		t.Error("a Secret rendered with existingSecret")
	}
	vols, mounts := byName(spec["volumes"]), byName(ctr["volumeMounts"])
	if got := dig(vols["token"], "secret", "secretName"); got != "agent-tokens" {
		t.Errorf("token volume from %v", got)
	}
	if dig(mounts["token"], "readOnly") != true {
		t.Error("token mounted writable")
	}
	if args := fmt.Sprint(ctr["args"]); !strings.Contains(args, "--token-file=/etc/bulwark-agent/token/$(NODE_NAME)") {
		t.Errorf("args %s: want each node's own key", args)
	}
	if got := dig(mounts["host-run"], "mountPropagation"); got != "Bidirectional" {
		t.Errorf("/run/bulwark propagation %v: the Workload API socket must reach the node", got)
	}
	cfg := fmt.Sprint(dig(objs["ConfigMap/bulwark-agent-config"], "data", "agent.yaml"))
	for _, want := range []string{"mode: prevent\n", "server: https://bulwark.bulwark-system:8480\n", "learn: 10m\n",
		"workload-api-socket: /run/bulwark/workload.sock\n", "- namespace=payments mode=prevent\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("agent.yaml lacks %q:\n%s", want, cfg)
		}
	}
	agentReadsConfig(t, cfg)

	// A token value becomes a Secret and a file, never an env value.
	objs = render(t, "image: {repository: r}\nserver: {url: https://s, auth: staticTokens, token: bwk_sekrit}\n")
	_, ctr = podSpec(t, objs)
	if got := dig(objs["Secret/bulwark-agent-token"], "data", "token"); got != "YndrX3Nla3JpdA==" {
		t.Errorf("Secret token %v", got)
	}
	if all := fmt.Sprint(objs["DaemonSet/bulwark-agent"]); strings.Contains(all, "bwk_sekrit") {
		t.Error("the token value is in the DaemonSet")
	}
	if args := fmt.Sprint(ctr["args"]); !strings.Contains(args, "--token-file=/etc/bulwark-agent/token/token") {
		t.Errorf("args %s", args)
	}

	// A token per node: a Secret key per node name, each pod its own.
	objs = render(t, "image: {repository: r}\nserver:\n  url: https://s\n  auth: staticTokens\n  tokens: {node-1.example.com: bwk_one, node-2: bwk_two}\n")
	_, ctr = podSpec(t, objs)
	if got := fmt.Sprint(dig(objs["Secret/bulwark-agent-token"], "data")); got != "map[node-1.example.com:YndrX29uZQ== node-2:YndrX3R3bw==]" {
		t.Errorf("per-node Secret data %s", got)
	}
	if args := fmt.Sprint(ctr["args"]); !strings.Contains(args, "--token-file=/etc/bulwark-agent/token/$(NODE_NAME)") {
		t.Errorf("args %s", args)
	}

	c := k8stest.Start(t)
	c.MustKubectl("create", "namespace", namespace)
	got, err := c.KubectlStdin(out, "apply", "--dry-run=server", "-f", "-")
	if err != nil {
		t.Fatalf("chart does not apply: %v", err)
	}
	for _, want := range []string{"daemonset.apps/bulwark-agent created (server dry run)", "configmap/bulwark-agent-config created (server dry run)", "serviceaccount/bulwark-agent created (server dry run)"} {
		if !strings.Contains(got, want) {
			t.Errorf("dry run lacks %q:\n%s", want, got)
		}
	}
}

// Bad values are refused at render time with what to do.
func TestChartRefusals(t *testing.T) {
	k8stest.HelmBin(t)
	base := "image: {repository: r}\n"
	for _, tc := range []struct {
		values string
		args   []string
		want   string
	}{
		{"{}\n", nil, "image.repository is required"},
		{base, []string{"--set", "mode=enforce"}, `mode "enforce"`},
		{base, []string{"--set", "mechanism=ebpf"}, `mechanism "ebpf"`},
		{base, []string{"--set", "server.url=https://s,server.auth=staticTokens"}, "needs a token"},
		{base, []string{"--set", "server.url=https://s,server.auth=staticTokens,server.token=a,server.tokens.n1=b"}, "give one"},
		{base, []string{"--set", "server.url=https://s,server.auth=psat"}, `server.auth "psat"`},
		// A Secret of every node's token beside the projected ones would
		// undo what they are for.
		{base, []string{"--set", "server.url=https://s,server.token=a"}, "are for server.auth staticTokens"},
		{base, []string{"--set", "server.url=https://s,server.existingSecret=s"}, "are for server.auth staticTokens"},
	} {
		if _, err := k8stest.HelmTemplate(t, chartDir, release, namespace, tc.values, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("helm template %v %v: %v, want %q", tc.values, tc.args, err, tc.want)
		}
	}
}

// The default with a server: the agent authenticates with its pod's own
// projected service account token (audience bulwark, an hour, rotated by
// the kubelet), never with a Secret of every node's token; the automounted
// API token stays off. The rendering applies to a real API server.
func TestChartServiceAccountToken(t *testing.T) {
	k8stest.HelmBin(t)
	out, err := k8stest.HelmTemplate(t, chartDir, release, namespace, "image: {repository: r}\nserver: {url: https://bulwark.bulwark-system:8480}\n")
	if err != nil {
		t.Fatal(err)
	}
	objs := k8stest.Objects(t, out)
	spec, ctr := podSpec(t, objs)
	for k := range objs {
		if strings.HasPrefix(k, "Secret/") {
			t.Errorf("%s rendered: no Secret of tokens with service account tokens", k)
		}
	}
	if spec["automountServiceAccountToken"] != false || dig(objs["ServiceAccount/bulwark-agent"], "automountServiceAccountToken") != false {
		t.Error("the API server's token is automounted")
	}
	vols, mounts := byName(spec["volumes"]), byName(ctr["volumeMounts"])
	sat := dig(vols["token"], "projected", "sources", 0, "serviceAccountToken")
	if got := fmt.Sprint(sat); got != "map[audience:bulwark expirationSeconds:3600 path:token]" {
		t.Errorf("projected token %s: want audience bulwark, an hour, at token", got)
	}
	if got := dig(vols["token"], "projected", "defaultMode"); fmt.Sprint(got) != "256" {
		t.Errorf("token file mode %v, want 0400", got)
	}
	if dig(mounts["token"], "readOnly") != true || dig(mounts["token"], "mountPath") != "/etc/bulwark-agent/token" {
		t.Errorf("token mount %v", mounts["token"])
	}
	if args := fmt.Sprint(ctr["args"]); !strings.Contains(args, "--token-file=/etc/bulwark-agent/token/token") {
		t.Errorf("args %s", args)
	}
	objs = render(t, "image: {repository: r}\nserver:\n  url: https://s\n  serviceAccountToken: {audience: bulwark-prod, expirationSeconds: 7200}\n")
	spec, _ = podSpec(t, objs)
	if got := fmt.Sprint(dig(byName(spec["volumes"])["token"], "projected", "sources", 0, "serviceAccountToken")); got != "map[audience:bulwark-prod expirationSeconds:7200 path:token]" {
		t.Errorf("projected token %s: want the values' audience and life", got)
	}

	c := k8stest.Start(t)
	c.MustKubectl("create", "namespace", namespace)
	if got, err := c.KubectlStdin(out, "apply", "--dry-run=server", "-f", "-"); err != nil || !strings.Contains(got, "daemonset.apps/bulwark-agent created (server dry run)") {
		t.Fatalf("chart does not apply: %v\n%s", err, got)
	}
}
