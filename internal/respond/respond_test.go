package respond

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/failpoint"
	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/kube"
	"github.com/bulwark-sec/bulwark/internal/store"
)

func policy(mod func(*Policy), rules ...Rule) *Policy {
	p := Default()
	p.Rules = rules
	if mod != nil {
		mod(p)
	}
	return p
}

func drift(w fleet.Workload) Case {
	return Case{Trigger: TriggerDrift, Key: TriggerDrift, Reason: "refused exec of /tmp/x", Workload: w}
}

// The responses on a real kube-apiserver: each action does what it says
// to the right object, once, audited; the safety limits turn actions into
// alerts.
func TestRespondOnKubernetes(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()

	t.Run("drift replaces the pod once", func(t *testing.T) {
		eng := e.engine(policy(nil, Rule{Namespace: "shop", Drift: Replace, Revoked: Alert}))
		pods := e.deployment("shop", "web", "reg/web@sha256:bad", 2)
		r, err := eng.Respond(ctx, drift(pods[0]))
		if err != nil {
			t.Fatal(err)
		}
		if r.Action != Replace || r.State != store.ResponseDone || r.Owner != "Deployment/web" || !strings.Contains(r.Detail, "deleted pod shop/web-0") {
			t.Errorf("response: %+v", r)
		}
		if e.podExists("shop", "web-0") || !e.podExists("shop", "web-1") {
			t.Error("web-0 should be gone and web-1 still there")
		}
		again, err := eng.Respond(ctx, drift(pods[0]))
		if err != nil || again.ID != r.ID || again.State != store.ResponseDone {
			t.Errorf("the same drift again: %+v %v, want response %d unchanged", again, err, r.ID)
		}
		want := []string{"runtime.response pod:shop/web-0", "runtime.response.done pod:shop/web-0"}
		if got := e.auditActions(); !slices.Equal(got, want) {
			t.Errorf("audit: %q, want %q", got, want)
		}
	})

	t.Run("a replacement that drifts again trips the breaker", func(t *testing.T) {
		eng := e.engine(policy(func(p *Policy) { p.BreakerMax = 2 }, Rule{Namespace: "loop", Drift: Replace, Revoked: Alert}))
		pods := e.deployment("loop", "api", "reg/api@sha256:bad", 3) // each one the replacement of the one before
		for i, w := range pods {
			r, err := eng.Respond(ctx, drift(w))
			if err != nil {
				t.Fatal(err)
			}
			if i < 2 && r.State != store.ResponseDone || i == 2 && (r.State != store.ResponseSkipped || !strings.Contains(r.Detail, "circuit breaker open: 2 replace responses on Deployment/api")) {
				t.Errorf("replacement %d: %s %q", i+1, r.State, r.Detail)
			}
		}
		if !e.podExists("loop", "api-2") {
			t.Error("the breaker let the third replacement through")
		}
	})

	t.Run("per-namespace rate limit", func(t *testing.T) {
		eng := e.engine(policy(func(p *Policy) { p.PerNamespace = 2 }, Rule{Drift: Replace, Revoked: Alert}))
		var states []string
		for _, name := range []string{"a", "b", "c"} {
			r, err := eng.Respond(ctx, drift(e.deployment("busy", name, "reg/x@sha256:bad", 1)[0]))
			if err != nil {
				t.Fatal(err)
			}
			states = append(states, r.State)
			if r.State == store.ResponseSkipped && !strings.Contains(r.Detail, "rate limit: 2 replace responses in namespace busy") {
				t.Errorf("skipped for %q", r.Detail)
			}
		}
		if !slices.Equal(states, []string{"done", "done", "skipped"}) {
			t.Errorf("states %v, want done, done, skipped", states)
		}
		// Another namespace has its own budget.
		r, err := eng.Respond(ctx, drift(e.deployment("calm", "d", "reg/x@sha256:bad", 1)[0]))
		if err != nil || r.State != store.ResponseDone {
			t.Errorf("other namespace: %+v %v", r, err)
		}
	})

	t.Run("revocation rolls the Deployment back once", func(t *testing.T) {
		eng := e.engine(policy(nil, Rule{Namespace: "pay", Drift: Alert, Revoked: Rollback}))
		pods := e.deployment("pay", "api", "reg/pay@sha256:bad", 2)
		bare := e.pod("pay", "debug", "reg/pay@sha256:bad", nil)
		x := fleet.New(nil, nil)
		var cs []agentproto.Container
		for _, w := range append(pods, bare) {
			cs = append(cs, agentproto.Container{ID: w.Container, Namespace: "k8s.io", Image: "sha256:bad", Labels: map[string]string{
				agentproto.LabelPodName: w.Pod, agentproto.LabelPodNamespace: w.PodNamespace, agentproto.LabelPodUID: w.PodUID,
				agentproto.LabelContainer: "web"}})
		}
		x.Observe(agentproto.Heartbeat{Node: "node-1", Mode: "prevent", State: agentproto.StateEnforcingFanotify, Containers: cs}, time.Now())
		wk := &Worker{Engine: eng, Fleet: x}
		job := Job{Trigger: TriggerRevoked, Event: "certification-7", Digest: "sha256:bad", Reason: "CVE-1 (HIGH)", Target: "reg/pay@sha256:good"}
		for range 2 { // the outbox published twice
			if err := wk.revoked(ctx, job); err != nil {
				t.Fatal(err)
			}
		}
		img, ann := e.deploymentImage("pay", "api")
		if img != "reg/pay@sha256:good" || ann[RolledBackFromLabel] != "sha256:bad" {
			t.Errorf("deployment image %s, annotations %v", img, ann)
		}
		rs, err := e.st.ResponsesPage(ctx, "pay", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rs {
			got = append(got, r.Action+" "+r.State+" "+r.Owner+" "+r.Pod)
		}
		slices.Sort(got)
		want := []string{"rollback done Deployment/api " + rs[len(rs)-1].Pod, "rollback skipped  debug"}
		if len(rs) != 2 || !slices.Contains(got, want[1]) || !strings.HasPrefix(got[0], "rollback done Deployment/api ") {
			t.Errorf("responses: %q, want one rollback of Deployment/api and the bare pod skipped", got)
		}
		// Without a known-good digest: an alert, nothing patched.
		job.Event, job.Target = "certification-8", ""
		if err := wk.revoked(ctx, job); err != nil {
			t.Fatal(err)
		}
		rs, _ = e.st.ResponsesPage(ctx, "pay", 0, 10)
		for _, r := range rs {
			if strings.HasPrefix(r.Key, "revoked:certification-8|") && r.Pod != "debug" &&
				(r.State != store.ResponseSkipped || !strings.Contains(r.Detail, "no known-good digest")) {
				t.Errorf("without a target: %+v", r)
			}
		}
		if img, _ := e.deploymentImage("pay", "api"); img != "reg/pay@sha256:good" {
			t.Errorf("image %s after the revocation without target", img)
		}
	})

	t.Run("quarantine labels the pod and denies its traffic", func(t *testing.T) {
		eng := e.engine(policy(nil, Rule{Namespace: "lab", Drift: Quarantine, Revoked: Alert}))
		w := e.deployment("lab", "svc", "reg/svc@sha256:bad", 1)[0]
		r, err := eng.Respond(ctx, drift(w))
		if err != nil || r.State != store.ResponseDone {
			t.Fatalf("%+v %v", r, err)
		}
		var pod corev1.Pod
		if err := e.kc.Get(ctx, podPath("lab", w.Pod), &pod); err != nil {
			t.Fatal(err)
		}
		if pod.Labels[QuarantineLabel] != "true" {
			t.Errorf("pod labels %v", pod.Labels)
		}
		var np networkingv1.NetworkPolicy
		if err := e.kc.Get(ctx, "/apis/networking.k8s.io/v1/namespaces/lab/networkpolicies/"+QuarantinePolicy, &np); err != nil {
			t.Fatal(err)
		}
		if np.Spec.PodSelector.MatchLabels[QuarantineLabel] != "true" || len(np.Spec.PolicyTypes) != 2 ||
			len(np.Spec.Ingress) != 0 || len(np.Spec.Egress) != 0 {
			t.Errorf("network policy is not deny-all for quarantined pods: %+v", np.Spec)
		}
		// A second quarantine in the namespace reuses the policy.
		w2 := e.pod("lab", "other", "reg/svc@sha256:bad", nil)
		if r, err := eng.Respond(ctx, drift(w2)); err != nil || r.State != store.ResponseDone {
			t.Errorf("second quarantine: %+v %v", r, err)
		}
	})

	t.Run("dry run changes nothing", func(t *testing.T) {
		eng := e.engine(policy(func(p *Policy) { p.DryRun = true }, Rule{Namespace: "dry", Drift: Replace, Revoked: Rollback}))
		w := e.deployment("dry", "web", "reg/web@sha256:bad", 1)[0]
		r, err := eng.Respond(ctx, drift(w))
		if err != nil || !r.DryRun || r.State != store.ResponseDone || !strings.Contains(r.Detail, "dry run: would replace pod dry/web-0") {
			t.Errorf("%+v %v", r, err)
		}
		if !e.podExists("dry", "web-0") {
			t.Error("a dry run deleted the pod")
		}
	})

	t.Run("an unreachable API server is retried, not recorded", func(t *testing.T) {
		bad := *e.kc
		bad.Server = "https://127.0.0.1:1"
		eng := &Engine{Policy: policy(nil, Rule{Drift: Replace, Revoked: Alert}), Auditor: storeAuditor{e.st}, Orchestrator: &Kubernetes{Client: &bad}}
		w := e.deployment("down", "web", "reg/web@sha256:bad", 1)[0]
		_, err := eng.Respond(ctx, drift(w))
		if !Retryable(err) {
			t.Errorf("error %v: want retryable", err)
		}
		if rs, _ := e.st.ResponsesPage(ctx, "down", 0, 10); len(rs) != 0 {
			t.Errorf("recorded %+v", rs)
		}
	})

	t.Run("a pod already gone is skipped", func(t *testing.T) {
		eng := e.engine(policy(nil, Rule{Drift: Replace, Revoked: Alert}))
		w := e.deployment("gone", "web", "reg/web@sha256:bad", 1)[0]
		w.Pod = "no-such-pod"
		r, err := eng.Respond(ctx, drift(w))
		if err != nil || r.State != store.ResponseSkipped || r.Detail != "the pod no longer exists" {
			t.Errorf("%+v %v", r, err)
		}
	})

	t.Run("an agent cannot have another node's pod acted on", func(t *testing.T) {
		eng := e.engine(policy(nil, Rule{Drift: Replace, Revoked: Alert}))
		w := e.pod("nodes", "elsewhere", "reg/x@sha256:bad", nil)
		var pod corev1.Pod
		e.kc.Get(ctx, podPath("nodes", "elsewhere"), &pod)
		// Recreate the pod bound to node-2.
		e.kc.Delete(ctx, podPath("nodes", "elsewhere"), &metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
		pod.ResourceVersion, pod.UID, pod.Spec.NodeName = "", "", "node-2"
		var got corev1.Pod
		if err := e.kc.Create(ctx, "/api/v1/namespaces/nodes/pods", pod, &got); err != nil {
			t.Fatal(err)
		}
		w.PodUID = string(got.UID) // the agent of node-1 names node-2's pod
		r, err := eng.Respond(ctx, drift(w))
		if err != nil || r.State != store.ResponseSkipped || !strings.Contains(r.Detail, "runs on node node-2, not on node-1") {
			t.Errorf("%+v %v", r, err)
		}
		if !e.podExists("nodes", "elsewhere") {
			t.Error("another node's pod was deleted on an agent's word")
		}
	})

	t.Run("an agent cannot have an unscheduled pod acted on", func(t *testing.T) {
		eng := e.engine(policy(nil, Rule{Drift: Replace, Revoked: Alert}))
		w := e.pod("nodes", "pending", "reg/x@sha256:bad", nil)
		var pod corev1.Pod
		e.kc.Get(ctx, podPath("nodes", "pending"), &pod)
		// Recreate the pod with no node: pending, running nowhere.
		e.kc.Delete(ctx, podPath("nodes", "pending"), &metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
		pod.ResourceVersion, pod.UID, pod.Spec.NodeName = "", "", ""
		var got corev1.Pod
		if err := e.kc.Create(ctx, "/api/v1/namespaces/nodes/pods", pod, &got); err != nil {
			t.Fatal(err)
		}
		w.PodUID = string(got.UID) // node-1's agent names a pod that runs nowhere
		r, err := eng.Respond(ctx, drift(w))
		if err != nil || r.State != store.ResponseSkipped || !strings.Contains(r.Detail, "not on node-1") {
			t.Errorf("%+v %v", r, err)
		}
		if !e.podExists("nodes", "pending") {
			t.Error("an unscheduled pod was deleted on an agent's word")
		}
	})

	t.Run("an agent cannot have a Deployment rolled back that does not run the digest", func(t *testing.T) { forgedRollbacks(t, e) })
	t.Run("an agent cannot have a pod acted on by naming no container", func(t *testing.T) { forgedUnnamed(t, e) })

	t.Run("no cluster: actions skipped with the reason", func(t *testing.T) {
		eng := &Engine{Policy: policy(nil, Rule{Drift: Replace, Revoked: Alert}), Auditor: storeAuditor{e.st}}
		r, err := eng.Respond(ctx, drift(fleet.Workload{Node: "n", Container: "c1", Pod: "p", PodNamespace: "nocluster", PodUID: "u"}))
		if err != nil || r.State != store.ResponseSkipped || !strings.Contains(r.Detail, "--kubeconfig") {
			t.Errorf("%+v %v", r, err)
		}
		r, err = eng.Respond(ctx, drift(fleet.Workload{Node: "n", Container: "c2"}))
		if err != nil || r.State != store.ResponseSkipped || !strings.Contains(r.Detail, "not a Kubernetes pod") {
			t.Errorf("standalone container: %+v %v", r, err)
		}
	})
}

// kill -9 between recording a response and taking it: after the restart
// the recorded response is taken, once, and never recorded twice.
func TestRespondCrashMidResponse(t *testing.T) {
	if os.Getenv("RESPOND_CHILD") == "1" {
		crashChild(t)
		return
	}
	e := newEnv(t)
	w := e.deployment("crash", "web", "reg/web@sha256:bad", 1)[0]
	wj, _ := json.Marshal(w)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestRespondCrashMidResponse$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RESPOND_CHILD=1", failpoint.Env+"=respond.recorded", "RESPOND_DB="+e.st.Path(),
		"RESPOND_WORKLOAD="+string(wj), "RESPOND_KUBECONFIG="+e.kubeconfig)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want killed by SIGKILL\n%s", err, out)
	}
	rs, err := e.st.ResponsesPage(t.Context(), "crash", 0, 10)
	if err != nil || len(rs) != 1 || rs[0].State != store.ResponsePlanned {
		t.Fatalf("after the crash: %+v %v, want one planned response", rs, err)
	}
	if !e.podExists("crash", "web-0") {
		t.Fatal("the pod was deleted before the crash point")
	}
	eng := e.engine(policy(nil, Rule{Drift: Replace, Revoked: Alert}))
	for range 2 {
		r, err := eng.Respond(t.Context(), drift(w))
		if err != nil || r.ID != rs[0].ID || r.State != store.ResponseDone {
			t.Fatalf("after restart: %+v %v, want response %d done", r, err, rs[0].ID)
		}
	}
	if e.podExists("crash", "web-0") {
		t.Error("the resumed response did not replace the pod")
	}
	want := []string{"runtime.response pod:crash/web-0", "runtime.response.done pod:crash/web-0"}
	if got := e.auditActions(); !slices.Equal(got, want) {
		t.Errorf("audit: %q, want %q", got, want)
	}
}

func crashChild(t *testing.T) {
	st := openStore(t, os.Getenv("RESPOND_DB"))
	kc, err := kube.Load(os.Getenv("RESPOND_KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	var w fleet.Workload
	json.Unmarshal([]byte(os.Getenv("RESPOND_WORKLOAD")), &w)
	eng := &Engine{Policy: policy(nil, Rule{Drift: Replace, Revoked: Alert}), Auditor: storeAuditor{st}, Orchestrator: &Kubernetes{Client: kc}}
	_, err = eng.Respond(t.Context(), drift(w))
	t.Fatalf("the failpoint did not kill the child: %v", err)
}
