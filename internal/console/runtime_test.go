package console

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// facts describes the seeded images as the server's describer would.
type facts map[string]fleet.ImageFacts

func (f facts) Image(_ context.Context, d string) (fleet.ImageFacts, error) { return f[d], nil }
func (f facts) Host(context.Context, *agentproto.Distro, []agentproto.Package) ([]string, error) {
	return nil, nil
}

// The runtime page: nodes, the running workloads with the end-of-life
// ones apart, responses and drift, the agents' strings escaped.
func TestConsoleRuntimePage(t *testing.T) {
	st, token := seed(t)
	ctx := t.Context()
	eol, shop := "sha256:"+eolHex, "sha256:"+targetHex
	x := fleet.New(facts{eol: {Repository: legacyRepo, Application: "legacy-portal", EndOfLife: true},
		shop: {Repository: shopRepo, Application: "shop", Certification: store.Certified}}, slog.New(slog.DiscardHandler))
	x.Observe(agentproto.Heartbeat{Node: "node-7", Mode: "prevent", State: agentproto.StateEnforcingFanotify, Kernel: "6.1.0-28", Region: "eu-west",
		Containers: []agentproto.Container{
			{ID: "c1", Namespace: "k8s.io", Image: shop, Labels: map[string]string{agentproto.LabelPodName: "web-1", agentproto.LabelPodNamespace: "shop"}},
			{ID: "c2", Namespace: "k8s.io", Image: eol, Labels: map[string]string{agentproto.LabelPodName: "<script>alert(1)</script>", agentproto.LabelPodNamespace: "legacy"}},
		}}, time.Now())
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go x.Run(runCtx)
	for x.Pending() > 0 {
		time.Sleep(time.Millisecond)
	}
	if _, err := st.AddRuntimeEvents(ctx, []store.RuntimeEvent{{Node: "node-7", Spool: "s", Seq: 1, Time: time.Now(), Verdict: "refused",
		Reason: "not in the image", PID: 4242, Path: "/tmp/<b>x</b>", Container: "c1", Image: shop}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.RecordResponse(ctx, store.Response{Key: "drift|u1", Trigger: "drift", Action: "replace", State: store.ResponseDone,
		Namespace: "shop", Pod: "web-1", Owner: "Deployment/web", Detail: "deleted pod shop/web-1"}); err != nil {
		t.Fatal(err)
	}
	h := New(st, Options{Logger: slog.New(slog.DiscardHandler), Running: x})
	r := httptest.NewRequest("GET", "/ui/runtime", nil)
	r.AddCookie(loggedIn(t, h, token))
	rec := serve(h, r)
	body := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("GET /ui/runtime: %d %s", rec.Code, body)
	}
	for _, want := range []string{"node-7", "6.1.0-28", "eu-west", "enforcing (fanotify)", "web-1", "legacy-portal",
		"Running workloads of end-of-life applications", "&lt;script&gt;alert(1)&lt;/script&gt;", "certified",
		"Deployment/web", "deleted pod shop/web-1", "4242", "/tmp/&lt;b&gt;x&lt;/b&gt;", "not in the image"} {
		if !strings.Contains(body, want) {
			t.Errorf("the runtime page does not show %q", want)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "<b>x") {
		t.Error("the runtime page shows an agent's string unescaped")
	}
	// Without a cookie: the login page, no data.
	rec = serve(h, httptest.NewRequest("GET", "/ui/runtime", nil))
	if rec.Code != http.StatusSeeOther || strings.Contains(rec.Body.String(), "node-7") {
		t.Errorf("without a cookie: %d", rec.Code)
	}
	// Without a running inventory: the page still renders.
	bare := New(st, Options{Logger: slog.New(slog.DiscardHandler)})
	r = httptest.NewRequest("GET", "/ui/runtime", nil)
	r.AddCookie(loggedIn(t, bare, token))
	rec = serve(bare, r)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "No agent has reported") {
		t.Errorf("without an inventory: %d", rec.Code)
	}
}
