package controle2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agent"
	"github.com/bulwark-sec/bulwark/internal/agentproto"
	apipkg "github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/k8stest"
	"github.com/bulwark-sec/bulwark/internal/notify"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/respond"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/spool"
	"github.com/bulwark-sec/bulwark/internal/store"
)

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeName: node-1
      hostNetwork: true
      terminationGracePeriodSeconds: 1
      tolerations: [{operator: Exists}]
      containers:
      - name: web
        image: %s
        imagePullPolicy: Never
        env: [{name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
        volumeMounts: [{name: ctl, mountPath: /ctl, subPathExpr: $(POD_NAME)}]
      volumes: [{name: ctl, hostPath: {path: %s, type: Directory}}]
`

const responsePolicy = `breaker: {max: 2, window: 10m}
default: {drift: alert, revoked: alert}
rules:
- namespace: shop
  drift: replace
  revoked: rollback
- namespace: late
  revoked: rollback
`

// The control loop on a real kubelet: a Deployment of a certified image
// runs; a drifted exec in its pod is refused by the agent and the pod is
// replaced by its ReplicaSet; an advisory import revokes the digest, the
// revocation names the pod and node, and the Deployment is rolled back to
// the last known-good digest; the running query names the pod no more.
func TestControlLoopOnRealKubelet(t *testing.T) {
	cl := k8stest.Start(t)
	node := cl.StartNode(t, "node-1")
	cl.StartControllers(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	probe := buildProbe(t)
	good, bad := probeImage(t, probe, "4.17.21"), probeImage(t, probe, "4.17.15")
	reg := registrytest.New(t)
	reg.Push(t, "shop/web:1", good)
	reg.Push(t, "shop/web:2", bad)
	repo := reg.Host + "/shop/web"
	goodRef, badRef := repo+"@"+digestOf(t, good), repo+"@"+digestOf(t, bad)
	node.Import(good, repo+":1", goodRef)
	node.Import(bad, repo+":2", badRef)
	t.Logf("good %s, bad %s", goodRef, badRef)

	// The server, with the response policy and the cluster.
	dir := t.TempDir()
	feed := t.TempDir()
	pol := filepath.Join(dir, "responses.yaml")
	gate := filepath.Join(dir, "policy.yaml")
	os.WriteFile(pol, []byte(responsePolicy), 0o600)
	os.WriteFile(gate, []byte("name: vulns\nbuiltins:\n  vulnerabilities: {maxSeverity: HIGH}\n  image-age: {enabled: false}\n  non-root: {enabled: false}\n  lean: {enabled: false}\n  required-labels: {enabled: false}\n  secrets: {enabled: false}\n  package-pins: {enabled: false}\n  base-image: {enabled: false}\n"), 0o600)
	st, err := server.OpenStore(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := apipkg.CreateToken(ctx, apipkg.NewAuditor(st, audit.AnchorPath(server.DBPath(dir))), "test", "root", store.RoleAdmin)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	// startServer runs the server on listen until the returned stop.
	startServer := func(listen string) (net.Addr, func()) {
		sctx, stop := context.WithCancel(ctx)
		ready, done := make(chan net.Addr, 1), make(chan error, 1)
		go func() {
			done <- server.Run(sctx, server.Config{DataDir: dir, Listen: listen, PollInterval: 50 * time.Millisecond,
				Policy: gate, AdvisorySources: []string{"npm=" + feed}, ResponsePolicy: pol, Kubeconfig: cl.Kubeconfig,
				AllowPrivate: []string{"127.0.0.1"}, Ready: func(a net.Addr) { ready <- a },
				Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))})
		}()
		stopped := false
		stopFn := func() {
			if !stopped {
				stopped = true
				stop()
				if err := <-done; err != nil {
					t.Errorf("server: %v", err)
				}
			}
		}
		t.Cleanup(stopFn)
		select {
		case a := <-ready:
			return a, stopFn
		case err := <-done:
			t.Fatalf("server: %v", err)
		}
		return nil, nil
	}
	addr, stopServer := startServer("127.0.0.1:0")
	c := &api{t: t, base: "http://" + addr.String()}
	var operator apipkg.TokenCreated
	c.call("POST", "/api/v1/tokens", admin.Token, map[string]string{"name": "agent", "role": store.RoleOperator}, http.StatusCreated, &operator)
	for _, ref := range []string{reg.Ref("shop/web:1"), reg.Ref("shop/web:2")} {
		var acc struct{ Job int64 }
		c.call("POST", "/api/v1/scans", operator.Token, map[string]string{"image": ref}, http.StatusAccepted, &acc)
		waitFor(t, "the scan of "+ref, 30*time.Second, func() bool {
			var j struct{ State, Error string }
			c.call("GET", fmt.Sprintf("/api/v1/jobs/%d", acc.Job), operator.Token, nil, http.StatusOK, &j)
			if j.State == store.JobFailed {
				t.Fatalf("scan of %s failed: %s", ref, j.Error)
			}
			return j.State == store.JobDone
		})
	}
	for _, ref := range []string{goodRef, badRef} {
		d := ref[strings.Index(ref, "@")+1:]
		c.call("POST", "/api/v1/images/"+d+"/certification", admin.Token, map[string]string{"status": store.Certified}, http.StatusOK, nil)
	}
	revocations := make(chan notify.Revocation, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev notify.Event
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &ev)
		var rv notify.Revocation
		json.Unmarshal(ev.Data, &rv)
		revocations <- rv
	}))
	defer hook.Close()
	c.call("POST", "/api/v1/webhooks", admin.Token, map[string]any{"name": "sec", "url": hook.URL, "kind": "generic",
		"secret": "a-webhook-secret-of-some-length", "events": []string{notify.EventRevoked}}, http.StatusCreated, nil)

	// The agent on the node, reporting to the server.
	sp, err := spool.Open(filepath.Join(dir, "spool"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var a *agent.Agent
	sender := agent.NewSender(agent.SenderConfig{URL: c.base, Token: operator.Token, Node: node.Name, Spool: sp,
		Heartbeat: func() agentproto.Heartbeat { return a.Heartbeat(sp) }, HeartbeatEvery: 200 * time.Millisecond})
	if a, err = agent.New(agent.Config{Mode: agent.ModePrevent, Address: node.Containerd, Namespaces: []string{k8stest.CRINamespace},
		Mechanism: agent.MechanismFanotify, CanaryDir: filepath.Join(dir, "canary"), Report: sender.Report,
		Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))}); err != nil {
		t.Fatal(err)
	}
	agentDone := make(chan error, 1)
	go func() { agentDone <- a.Run(ctx) }()
	select {
	case <-a.Ready():
	case err := <-agentDone:
		t.Fatalf("the agent stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the agent was not ready within 60 s")
	}
	go sender.Run(ctx)

	// The Deployment runs the certified (soon revoked) digest.
	ctl, err := os.MkdirTemp("", "bwctl")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(ctl)
	cl.MustKubectl("create", "namespace", "shop")
	if _, err := cl.KubectlStdin(fmt.Sprintf(deployment, badRef, ctl), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	first := runningPod(t, cl, "", 60*time.Second)
	var ws struct{ Workloads []fleet.Workload }
	waitFor(t, "the pod in the running inventory", 20*time.Second, func() bool {
		c.call("GET", "/api/v1/runtime/workloads", admin.Token, nil, http.StatusOK, &ws)
		for _, w := range ws.Workloads {
			if w.PodUID == string(first.UID) && w.ContainerName == "web" {
				return w.Certification == store.Certified
			}
		}
		return false
	})

	// Drift: refused, answered by replacing the pod.
	if got := probeDo(t, filepath.Join(ctl, first.Name), "copy /bin/probe /tmp/drift"); got != "ok" {
		t.Fatalf("copy: %s", got)
	}
	driftAt := time.Now()
	if got := probeDo(t, filepath.Join(ctl, first.Name), "run /tmp/drift"); got != "eperm" {
		t.Fatalf("drifted exec: %q, want eperm (refused)", got)
	}
	second := runningPod(t, cl, string(first.UID), 30*time.Second)
	t.Logf("FIGURE drift (exec refused) to replacement pod Running: %s", time.Since(driftAt).Round(time.Millisecond))
	if img := second.Spec.Containers[0].Image; img != badRef {
		t.Errorf("the replacement runs %s, want the certified %s", img, badRef)
	}
	var evs struct{ Events []store.RuntimeEvent }
	c.call("GET", "/api/v1/runtime/events", admin.Token, nil, http.StatusOK, &evs)
	if len(evs.Events) != 1 || evs.Events[0].Verdict != "refused" || !strings.HasSuffix(evs.Events[0].Path, "/tmp/drift") ||
		!strings.Contains(evs.Events[0].Tree, " probe") {
		t.Errorf("drift events: %+v, want the refused /tmp/drift with the probe in its process tree", evs.Events)
	}
	var rs struct{ Responses []store.Response }
	c.call("GET", "/api/v1/runtime/responses?namespace=shop", admin.Token, nil, http.StatusOK, &rs)
	if len(rs.Responses) != 1 || rs.Responses[0].Action != respond.Replace || rs.Responses[0].State != store.ResponseDone ||
		rs.Responses[0].PodUID != string(first.UID) || rs.Responses[0].Owner != "Deployment/web" {
		t.Errorf("responses after the drift: %+v", rs.Responses)
	}

	// The advisory: the running digest is revoked, the Deployment rolled
	// back to the known-good digest.
	waitFor(t, "the replacement in the running inventory", 20*time.Second, func() bool {
		c.call("GET", "/api/v1/runtime/workloads?namespace=shop", admin.Token, nil, http.StatusOK, &ws)
		n := 0
		for _, w := range ws.Workloads {
			if w.ContainerName == "web" && w.PodUID == string(second.UID) {
				n++
			}
		}
		return n >= 1 // a container the kubelet restarted stays listed until the agent sees it go
	})
	rec, err := os.ReadFile(filepath.Join("..", "match", "testdata", "osv", "GHSA-35jh-r3h4-6jhm.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(feed, "GHSA-35jh-r3h4-6jhm.json"), rec, 0o644)
	importAt := time.Now()
	c.call("POST", "/api/v1/advisories/import", admin.Token, map[string]any{"sources": []string{"npm"}}, http.StatusOK, nil)
	waitFor(t, "the rollback", 20*time.Second, func() bool {
		img, _ := cl.Kubectl("get", "deployment", "web", "-n", "shop", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
		return strings.TrimSpace(img) == goodRef
	})
	t.Logf("FIGURE advisory import to rollback applied: %s", time.Since(importAt).Round(time.Millisecond))
	select {
	case rv := <-revocations:
		named := false
		for _, w := range rv.Running { // a replaced pod's container may still be reported while it stops
			named = named || w.Pod == second.Name && w.Node == node.Name
		}
		if !named || rv.RollbackTarget != digestOf(t, good) {
			t.Errorf("the revocation names %+v, target %s; want pod %s on %s", rv.Running, rv.RollbackTarget, second.Name, node.Name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no revocation notification")
	}
	third := runningPod(t, cl, string(second.UID), 60*time.Second)
	if img := third.Spec.Containers[0].Image; img != goodRef {
		t.Errorf("after the rollback the pod runs %s, want %s", img, goodRef)
	}
	waitFor(t, "the running query to drop the revoked digest", 20*time.Second, func() bool {
		var exp fleet.Exposure
		c.call("GET", "/api/v1/vulnerabilities/CVE-2021-23337/running", admin.Token, nil, http.StatusOK, &exp)
		return len(exp.Workloads) == 0 && exp.Pending == 0
	})
	c.call("GET", "/api/v1/runtime/responses?namespace=shop", admin.Token, nil, http.StatusOK, &rs)
	if len(rs.Responses) != 2 || rs.Responses[0].Action != respond.Rollback || rs.Responses[0].State != store.ResponseDone ||
		rs.Responses[0].Target != goodRef {
		t.Errorf("responses after the advisory: %+v", rs.Responses)
	}

	// A Deployment of the revoked digest created after the revocation (no
	// admission webhook here): its pod is a workload the inventory learns
	// of after the revocation was answered, rolled back as it would have
	// been, under the revocation's key, once its agent reports it.
	cl.MustKubectl("create", "namespace", "late")
	lateAt := time.Now()
	late := strings.NewReplacer("name: web, namespace: shop", "name: api, namespace: late", "app: web", "app: api").Replace(deployment)
	if _, err := cl.KubectlStdin(fmt.Sprintf(late, badRef, ctl), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the late Deployment rolled back", 60*time.Second, func() bool {
		img, _ := cl.Kubectl("get", "deployment", "api", "-n", "late", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
		return strings.TrimSpace(img) == goodRef
	})
	t.Logf("FIGURE Deployment of a revoked digest created after the revocation -> rolled back: %s", time.Since(lateAt).Round(time.Millisecond))
	var lrs struct{ Responses []store.Response }
	c.call("GET", "/api/v1/runtime/responses?namespace=late", admin.Token, nil, http.StatusOK, &lrs)
	if len(lrs.Responses) != 1 || lrs.Responses[0].Owner != "Deployment/api" || lrs.Responses[0].Target != goodRef ||
		!strings.HasPrefix(lrs.Responses[0].Key, rs.Responses[0].Key[:strings.Index(rs.Responses[0].Key, "|")+1]) {
		t.Errorf("late responses: %+v, want one rollback of Deployment/api under the revocation's key (%s)", lrs.Responses, rs.Responses[0].Key)
	}
	// The kubelet's view of the pod the agent reported (checked before the
	// rollback): the revoked digest.
	if id, _ := cl.Kubectl("get", "pods", "-n", "late", "-o", "jsonpath={.items[*].status.containerStatuses[*].imageID}"); !strings.Contains(id, "@"+digestOf(t, bad)) {
		t.Logf("the kubelet reports imageID %q (the pod may have been replaced already)", id)
	}

	// The server is down while the pod drifts: the agent refuses the exec
	// and spools the event; once the server is back, the pod is replaced.
	stopServer()
	if got := probeDo(t, filepath.Join(ctl, third.Name), "copy /bin/probe /tmp/drift2"); got != "ok" {
		t.Fatalf("copy: %s", got)
	}
	if got := probeDo(t, filepath.Join(ctl, third.Name), "run /tmp/drift2"); got != "eperm" {
		t.Fatalf("drifted exec with the server down: %q, want eperm", got)
	}
	time.Sleep(time.Second)
	if p := runningPod(t, cl, "", 5*time.Second); p.UID != third.UID {
		t.Fatalf("pod %s replaced while the server was down", p.Name)
	}
	restartAt := time.Now()
	startServer(addr.String())
	fourth := runningPod(t, cl, string(third.UID), 60*time.Second)
	t.Logf("FIGURE server restarted -> spooled drift answered, replacement Running: %s", time.Since(restartAt).Round(time.Millisecond))

	// A replacement loop: the replacement drifts again; the breaker (2
	// replacements of Deployment/web in 10 minutes) stops it and alerts.
	waitFor(t, "the replacement in the running inventory", 20*time.Second, func() bool {
		c.call("GET", "/api/v1/runtime/workloads?namespace=shop", admin.Token, nil, http.StatusOK, &ws)
		for _, w := range ws.Workloads {
			if w.ContainerName == "web" && w.PodUID == string(fourth.UID) {
				return true
			}
		}
		return false
	})
	if got := probeDo(t, filepath.Join(ctl, fourth.Name), "copy /bin/probe /tmp/drift3"); got != "ok" {
		t.Fatalf("copy: %s", got)
	}
	if got := probeDo(t, filepath.Join(ctl, fourth.Name), "run /tmp/drift3"); got != "eperm" {
		t.Fatalf("drifted exec: %q, want eperm", got)
	}
	waitFor(t, "the breaker's alert", 20*time.Second, func() bool {
		c.call("GET", "/api/v1/runtime/responses?namespace=shop", admin.Token, nil, http.StatusOK, &rs)
		return len(rs.Responses) == 4
	})
	if r := rs.Responses[0]; r.State != store.ResponseSkipped || r.PodUID != string(fourth.UID) || !strings.Contains(r.Detail, "circuit breaker open") {
		t.Errorf("third drift: %+v, want skipped by the breaker", r)
	}
	if p := runningPod(t, cl, "", 5*time.Second); p.UID != fourth.UID {
		t.Errorf("the breaker let pod %s be replaced", p.Name)
	}
}
