package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/k8stest"
	"github.com/bulwark-sec/bulwark/internal/kube"
	"github.com/bulwark-sec/bulwark/internal/pgtest"
	"github.com/bulwark-sec/bulwark/internal/respond"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// kubeDeployment creates Deployment name in ns running image, its
// ReplicaSet and one pod on node-1, owned as the controllers (absent:
// a kube-apiserver alone) would own them, and returns the pod's UID.
func kubeDeployment(t *testing.T, kc *kube.Client, ns, name, image string) string {
	t.Helper()
	ctx := t.Context()
	if err := kc.Create(ctx, "/api/v1/namespaces", corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, nil); err != nil && !kube.IsConflict(err) {
		t.Fatal(err)
	}
	labels := map[string]string{"app": name}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}}}
	var d appsv1.Deployment
	if err := kc.Create(ctx, "/apis/apps/v1/namespaces/"+ns+"/deployments", appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}, &d); err != nil {
		t.Fatal(err)
	}
	var rs appsv1.ReplicaSet
	if err := kc.Create(ctx, "/apis/apps/v1/namespaces/"+ns+"/replicasets", appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-rs", OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1",
			Kind: "Deployment", Name: name, UID: d.UID, Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}, &rs); err != nil {
		t.Fatal(err)
	}
	var p corev1.Pod
	if err := kc.Create(ctx, "/api/v1/namespaces/"+ns+"/pods", corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-1", Labels: labels, OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1",
			Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: tmpl.Spec.Containers}}, &p); err != nil {
		t.Fatal(err)
	}
	return string(p.UID)
}

func kubeImage(t *testing.T, kc *kube.Client, ns, name string) (string, string) {
	t.Helper()
	var d appsv1.Deployment
	if err := kc.Get(t.Context(), "/apis/apps/v1/namespaces/"+ns+"/deployments/"+name, &d); err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image, d.Annotations[respond.RolledBackFromLabel]
}

// podContainer is the container of pod ns/name (uid) as node-1's agent
// reports it.
func podContainer(ns, name, uid, digest string) agentproto.Container {
	return agentproto.Container{ID: "c-" + name, Namespace: "k8s.io", Image: digest, Started: time.Now().UTC(),
		Labels: map[string]string{agentproto.LabelPodName: name, agentproto.LabelPodNamespace: ns,
			agentproto.LabelPodUID: uid, agentproto.LabelContainer: "web"}}
}

// A revocation answers the workloads the running inventory lists; one
// that a heartbeat brings after (a container restarted, a heartbeat
// late) is answered too, with the revocation's key and rollback target:
// its Deployment rolled back within a bound, once however often
// heartbeats repeat it or the container flaps, and after a restart of
// the server. On SQLite and on PostgreSQL, on a real kube-apiserver.
func TestServerRevocationAnswersLateWorkloads(t *testing.T) {
	cl := k8stest.Start(t)
	kc, err := kube.Load(cl.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("sqlite", func(t *testing.T) { testLateRevocation(t, kc, cl.Kubeconfig, "late-sqlite", "") })
	t.Run("postgres", func(t *testing.T) { testLateRevocation(t, kc, cl.Kubeconfig, "late-pg", pgtest.Start(t)) })
}

func testLateRevocation(t *testing.T, kc *kube.Client, kubeconfig, ns, dsn string) {
	lr := newLodashRepo(t)
	pol := filepath.Join(t.TempDir(), "responses.yaml")
	os.WriteFile(pol, []byte("default: {drift: alert, revoked: alert}\nrules:\n- namespace: late-*\n  revoked: rollback\n"), 0o600)
	dir := t.TempDir()
	var admin api.TokenCreated
	var st *store.Store
	var err error
	if dsn == "" {
		admin = bootstrap(t, dir)
		st, err = OpenStore(t.Context(), dir)
	} else {
		st, err = store.Open(t.Context(), dsn)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if dsn != "" {
		if admin, err = api.CreateToken(t.Context(), api.NewAuditor(st, ""), "test", "root", store.RoleAdmin); err != nil {
			t.Fatal(err)
		}
	}
	mod := func(cfg *Config) {
		cfg.Policy = vulnerabilitiesOnly(t)
		cfg.AdvisorySources = []string{"npm=" + lr.feed}
		cfg.ResponsePolicy = pol
		cfg.Kubeconfig = kubeconfig
		cfg.Database = dsn
	}
	c, stop := startServerWith(t, dir, mod)
	_, operator := roleTokens(c, admin)
	waitScan(t, c, operator.Token, lr.reg.Ref("shop/web:1"))
	waitScan(t, c, operator.Token, lr.reg.Ref("shop/web:2"))
	for _, d := range []string{lr.oldDigest, lr.newDigest} {
		c.json("POST", "/api/v1/images/"+d+"/certification", admin.Token, map[string]string{"status": "certified"}, http.StatusOK, nil)
	}
	webUID := kubeDeployment(t, kc, ns, "web", lr.reg.Ref("shop/web:2"))
	target := lr.repo + "@" + lr.oldDigest

	// The revocation, while node-1's heartbeat lists nothing.
	c.json("POST", agentproto.HeartbeatPath, operator.Token, heartbeat("node-1", "", ""), http.StatusOK, nil)
	lr.advise(t)
	c.json("POST", "/api/v1/advisories/import", admin.Token, map[string]any{"sources": []string{"npm"}}, http.StatusOK, nil)
	respondJobs := func(state string) int {
		var n int
		if err := st.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM jobs WHERE kind = 'respond' AND state = '`+state+`'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor(t, "the revocation answered (nothing listed)", func() bool { return respondJobs(store.JobDone) == 1 })
	rev, ok, err := respond.Revocation(t.Context(), st, lr.newDigest)
	if err != nil || !ok || rev.Target != target {
		t.Fatalf("the revocation's respond job: %+v %v %v, want target %s", rev, ok, err, target)
	}
	responses := func() []store.Response { // newest first
		rs, err := st.ResponsesPage(t.Context(), ns, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	if rs := responses(); len(rs) != 0 {
		t.Fatalf("responses before the workload ran: %+v", rs)
	}

	// The pod's container comes (restarted, a late heartbeat): answered.
	late := agentproto.Heartbeat{Node: "node-1", Mode: "prevent", State: agentproto.StateEnforcingFanotify,
		Containers: []agentproto.Container{podContainer(ns, "web-1", webUID, lr.newDigest)}}
	start := time.Now()
	c.json("POST", agentproto.HeartbeatPath, operator.Token, late, http.StatusOK, nil)
	waitFor(t, "the late workload answered", func() bool { return len(responses()) == 1 })
	t.Logf("FIGURE late workload: heartbeat -> response recorded %s", time.Since(start).Round(time.Millisecond))
	r := responses()[0]
	if r.Key != respond.TriggerRevoked+":"+rev.Event+"|Deployment/web" || r.Action != respond.Rollback || r.Target != target || r.Pod != "web-1" {
		t.Errorf("late response: %+v, want a rollback of Deployment/web to %s under the revocation's key", r, target)
	}
	waitFor(t, "the rollback done", func() bool { return responses()[0].State == store.ResponseDone })
	if img, from := kubeImage(t, kc, ns, "web"); img != target || from != lr.newDigest {
		t.Errorf("Deployment/web runs %s (rolled back from %q), want %s", img, from, target)
	}

	// Repeated, and flapping (gone from one heartbeat, back in the next):
	// nothing answered twice.
	c.json("POST", agentproto.HeartbeatPath, operator.Token, late, http.StatusOK, nil)
	done := respondJobs(store.JobDone)
	c.json("POST", agentproto.HeartbeatPath, operator.Token, heartbeat("node-1", "", ""), http.StatusOK, nil)
	c.json("POST", agentproto.HeartbeatPath, operator.Token, late, http.StatusOK, nil)
	waitFor(t, "the flap's job run", func() bool { return respondJobs(store.JobDone) == done+1 && respondJobs(store.JobQueued) == 0 })
	if rs := responses(); len(rs) != 1 {
		t.Errorf("answered twice: %+v", rs)
	}

	// Restarted: the inventory is empty; the heartbeat brings the old pod
	// and a new Deployment's pod of the revoked digest. The revocation is
	// found in the job queue: the new one is rolled back to the same
	// target, the old one is not answered again.
	stop()
	apiUID := kubeDeployment(t, kc, ns, "api", lr.reg.Ref("shop/web:2"))
	c, stop = startServerWith(t, dir, mod)
	defer stop()
	late.Containers = append(late.Containers, podContainer(ns, "api-1", apiUID, lr.newDigest))
	c.json("POST", agentproto.HeartbeatPath, operator.Token, late, http.StatusOK, nil)
	waitFor(t, "the new Deployment rolled back", func() bool {
		img, _ := kubeImage(t, kc, ns, "api")
		return img == target
	})
	time.Sleep(200 * time.Millisecond)
	rs := responses()
	if len(rs) != 2 || rs[0].Owner != "Deployment/api" || rs[0].Key != respond.TriggerRevoked+":"+rev.Event+"|Deployment/api" {
		b, _ := json.MarshalIndent(rs, "", " ")
		t.Errorf("responses after the restart: %s", b)
	}
	for _, r := range rs {
		if strings.Contains(r.Detail, "refused") {
			t.Errorf("refused: %+v", r)
		}
	}
}

// The late answer is bounded: however often a revoked digest arrives,
// one job waits per revocation and digest; one more is queued once the
// waiting one runs (it may have listed the workloads before the arrival);
// none for a digest certified again, nor before the revocation's own job
// is queued (that job lists what runs when it runs).
func TestLateRevocationsQueueOneJobPerRevocation(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const d = "sha256:" + "ab"
	revoke := func() store.Certification {
		t.Helper()
		if err := st.SetCertification(ctx, d, store.Revoked, "CVE-1"); err != nil {
			t.Fatal(err)
		}
		c, err := st.Certification(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := revoke()
	// The revocation's own job, run (it listed nothing).
	if err := respond.Enqueue(ctx, st, respond.Job{Trigger: respond.TriggerRevoked, Event: "certification-1", Digest: d,
		Reason: c.Reason, Time: c.Updated, Target: "reg/x@sha256:good"}); err != nil {
		t.Fatal(err)
	}
	claim := func() *store.Job {
		t.Helper()
		j, err := st.ClaimJob(ctx, "test", respond.JobKind)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	if err := st.CompleteJob(ctx, claim()); err != nil {
		t.Fatal(err)
	}
	count := func(state string) int {
		var n int
		st.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM jobs WHERE kind = 'respond' AND state = ?`, state).Scan(&n)
		return n
	}
	wakes := 0
	l := newLateRevocations(st, fleet.New(nil, nil), func() { wakes++ }, 0, slog.New(slog.DiscardHandler))
	for range 100 { // a node flapping, a thousand containers arriving
		if err := l.answer(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if count(store.JobQueued) != 1 || wakes != 1 {
		t.Fatalf("%d jobs queued, %d wakes, want 1 and 1", count(store.JobQueued), wakes)
	}
	j := claim()
	var job respond.Job
	json.Unmarshal(j.Payload, &job)
	if job.Event != "certification-1" || job.Target != "reg/x@sha256:good" {
		t.Errorf("late job %+v, want the revocation's event and target", job)
	}
	// Running: it may have listed before this arrival; one more waits.
	for range 3 {
		l.answer(ctx, d)
	}
	if count(store.JobQueued) != 1 {
		t.Fatalf("%d jobs queued while one runs, want 1", count(store.JobQueued))
	}
	st.CompleteJob(ctx, j)
	st.CompleteJob(ctx, claim())

	// Revoked again: its outbox not published yet, nothing to queue.
	revoke()
	l.answer(ctx, d)
	if n := count(store.JobQueued); n != 0 {
		t.Errorf("%d jobs queued before the revocation's own", n)
	}
	// Certified again: nothing.
	st.SetCertification(ctx, d, store.Certified, "")
	l.answer(ctx, d)
	if n := count(store.JobQueued); n != 0 {
		t.Errorf("%d jobs queued for a certified digest", n)
	}
}
