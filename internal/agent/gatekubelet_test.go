package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/k8stest"
)

// gatePods: a pod whose command is a program from a hostPath volume (not
// in its image: what an attacker who creates pods would run), the same
// with hostPID, one that runs its image's entrypoint, and the same with
// hostPID and an exec readiness probe (runc exec); each pod's /ctl a
// directory of its own under the host directory %[2]s.
const gatePods = `apiVersion: v1
kind: Pod
metadata: {name: evil, namespace: default}
spec:
  nodeName: node-1
  hostNetwork: true
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  tolerations: [{operator: Exists}]
  containers:
  - {name: app, image: %[1]s, imagePullPolicy: Never, command: [/ctl/evil, escaped], volumeMounts: [{name: ctl, mountPath: /ctl, subPath: evil}]}
  volumes: [{name: ctl, hostPath: {path: %[2]s, type: Directory}}]
---
apiVersion: v1
kind: Pod
metadata: {name: evilhost, namespace: default}
spec:
  nodeName: node-1
  hostNetwork: true
  hostPID: true
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  tolerations: [{operator: Exists}]
  containers:
  - {name: app, image: %[1]s, imagePullPolicy: Never, command: [/ctl/evil, escaped], volumeMounts: [{name: ctl, mountPath: /ctl, subPath: evilhost}]}
  volumes: [{name: ctl, hostPath: {path: %[2]s, type: Directory}}]
---
apiVersion: v1
kind: Pod
metadata: {name: good, namespace: default}
spec:
  nodeName: node-1
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  tolerations: [{operator: Exists}]
  containers:
  - {name: app, image: %[1]s, imagePullPolicy: Never, volumeMounts: [{name: ctl, mountPath: /ctl, subPath: good}]}
  volumes: [{name: ctl, hostPath: {path: %[2]s, type: Directory}}]
---
apiVersion: v1
kind: Pod
metadata: {name: goodhost, namespace: default}
spec:
  nodeName: node-1
  hostNetwork: true
  hostPID: true
  terminationGracePeriodSeconds: 1
  tolerations: [{operator: Exists}]
  containers:
  - name: app
    image: %[1]s
    imagePullPolicy: Never
    volumeMounts: [{name: ctl, mountPath: /ctl, subPath: goodhost}]
    readinessProbe: {exec: {command: [/bin/tool, noop]}, periodSeconds: 1}
  volumes: [{name: ctl, hostPath: {path: %[2]s, type: Directory}}]
`

// TestGateOnRealKubelet: the gate on a real kubelet (CRI, its sandboxes,
// its cgroup layout), adoption slowed by 1 s so every container wins the
// race to its first exec. A pod whose command is a drifted program from a
// hostPath is killed before it runs (exit 137, nothing written) and
// reported refused, before-adoption/not-in-image, a hostPID pod (in the
// gate's cgroup scope, the host's pid namespace) as well; a pod running
// its image's entrypoint (and its sandbox's pause) comes up, and a hostPID
// one becomes Ready by its exec probe.
func TestGateOnRealKubelet(t *testing.T) {
	cl := k8stest.Start(t)
	node := cl.StartNode(t, "node-1")
	cl.StartControllers(t)
	probe := buildProbe(t)
	ref := "bulwark.test/probe:gate"
	node.Import(probeImage(t, probe), ref)
	ctl, err := os.MkdirTemp("", "bwgatek")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ctl) })
	for _, d := range []string{"evil", "evilhost", "good", "goodhost"} {
		if err := os.Mkdir(filepath.Join(ctl, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"evil", "evilhost"} {
		if err := os.WriteFile(filepath.Join(ctl, d, "evil"), append(append([]byte{}, probe...), "drifted"...), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var col collector
	a, _ := startAgent(t, node.Containerd, ModePrevent, &col, func(cfg *Config) {
		cfg.Namespaces = []string{k8stest.CRINamespace}
		cfg.ExecEventsDefault, cfg.adoptDelay = true, delay(time.Second)
		cfg.GateCgroup = node.CgroupRoot // this kubelet's pods only
	})
	if !a.gateStats().On {
		t.Fatal("prevent with the exec sensor: the gate is off")
	}
	if _, err := cl.KubectlStdin(fmt.Sprintf(gatePods, ref, ctl), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	for _, pod := range []string{"evil", "evilhost"} {
		code := podExitCode(t, cl, pod)
		if _, err := os.Stat(filepath.Join(ctl, pod, "ESCAPED")); err == nil || code != "137" {
			// Gate stats: Stopped not counting it says another node-wide
			// gate on the machine (another test's agent) continued it.
			t.Fatalf("%s: a drifted command from a hostPath: exit %s, escaped %v, gate %+v; want killed (137) before it ran", pod, code, err == nil, a.gateStats())
		}
		id, _ := cl.Kubectl("get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].containerID}")
		_, id, _ = strings.Cut(strings.TrimSpace(id), "://")
		e := col.after(0, func(e Event) bool {
			return e.Container == id && e.Path == "/ctl/evil" && e.Reason == ReasonBeforeAdoption+"/"+ReasonNotInImage
		})
		if e == nil || e.Verdict != VerdictRefused || e.Digest == "" || e.Namespace != k8stest.CRINamespace {
			t.Fatalf("the %s pod's event %+v, want refused before-adoption/not-in-image of /ctl/evil", pod, e)
		}
	}
	sock := filepath.Join(ctl, "good", "ctl.sock")
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			desc, _ := cl.Kubectl("describe", "pod", "good")
			t.Fatalf("the good pod did not come up in 90 s (gate %+v)\n%s", a.gateStats(), desc)
		}
	}
	if got := (&ctr{sock: sock}).do(t, "run /bin/tool"); got != "ok" {
		t.Fatalf("the good pod's image program: %s", got)
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		ready, _ := cl.Kubectl("get", "pod", "goodhost", "-o", "jsonpath={.status.containerStatuses[0].ready}")
		if strings.TrimSpace(ready) == "true" {
			break
		}
		if time.Now().After(deadline) {
			desc, _ := cl.Kubectl("describe", "pod", "goodhost")
			t.Fatalf("the hostPID pod with an exec probe was not Ready in 90 s (gate %+v)\n%s", a.gateStats(), desc)
		}
	}
	if s := a.gateStats(); s.Stopped < 3 || s.Killed < 2 || s.Continued < 1 {
		t.Fatalf("gate stats %+v: want the evil pods killed and the good pod (or its sandbox) continued", s)
	}
	t.Logf("gate on a real kubelet: %+v", a.gateStats())
}

// podExitCode waits up to 90 s for pod's container to end and returns its
// exit code.
func podExitCode(t *testing.T, cl *k8stest.Cluster, pod string) string {
	t.Helper()
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, _ := cl.Kubectl("get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].state.terminated.exitCode}")
		if code = strings.TrimSpace(code); code != "" {
			return code
		}
		if time.Now().After(deadline) {
			desc, _ := cl.Kubectl("describe", "pod", pod)
			t.Fatalf("the %s pod did not end in 90 s\n%s", pod, desc)
		}
	}
}
