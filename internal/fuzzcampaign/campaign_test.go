package fuzzcampaign_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/fuzz"
	"github.com/bulwark-sec/bulwark/internal/fuzz/fuzztest"
	"github.com/bulwark-sec/bulwark/internal/notify"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// call sends a JSON request with token and returns the status, the
// Location header and the body.
func call(t *testing.T, method, url, token string, body any) (int, string, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), b
}

// planted serves the planted-fault API and its document.
func planted(t *testing.T, faulty bool) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, fuzztest.Spec) })
	mux.Handle("/", (&fuzztest.Server{Faulty: faulty}).Handler())
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

// receiver records the events webhooks deliver.
type receiver struct {
	mu     sync.Mutex
	events []notify.Event
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev notify.Event
	if err := json.NewDecoder(r.Body).Decode(&ev); err == nil {
		rc.mu.Lock()
		rc.events = append(rc.events, ev)
		rc.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) of(typ string) []notify.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []notify.Event
	for _, e := range rc.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// waitCampaign polls the campaign at loc until it ends.
func waitCampaign(t *testing.T, srv *servertest.Server, loc string) store.FuzzCampaign {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, _, body := call(t, http.MethodGet, srv.URL+loc, srv.Viewer, nil)
		var c store.FuzzCampaign
		if code != http.StatusOK || json.Unmarshal(body, &c) != nil {
			t.Fatalf("GET %s: %d %s", loc, code, body)
		}
		if c.State == store.CampaignDone || c.State == store.CampaignFailed {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign still %s after 90 s", c.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func registerApp(t *testing.T, srv *servertest.Server, name string) {
	t.Helper()
	if code, _, body := call(t, http.MethodPost, srv.URL+"/api/v1/applications", srv.Admin, map[string]any{
		"name": name, "team": "payments", "contact": "payments-oncall", "repositories": []string{"shop/*"},
	}); code != http.StatusCreated {
		t.Fatalf("creating application: %d %s", code, body)
	}
}

// TestCampaignFindsPlantedFaultsAndNotifiesOwner: an admin registers the
// planted-fault API with its credential, an operator starts a campaign;
// it runs in the background, its report holds the planted faults, the
// owner's webhook gets fuzz.findings naming team and contact, and neither
// the registration, the report, the event nor the audit log shows the
// credential.
func TestCampaignFindsPlantedFaultsAndNotifiesOwner(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	srv := servertest.Start(t, server.Config{WatchInterval: time.Hour})
	api := planted(t, true)
	rc := &receiver{}
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	if code, _, body := call(t, http.MethodPost, srv.URL+"/api/v1/webhooks", srv.Admin, map[string]any{
		"name": "payments", "url": hook.URL, "secret": "0123456789abcdef0123", "events": []string{notify.EventFuzzFindings},
	}); code/100 != 2 {
		t.Fatalf("creating webhook: %d %s", code, body)
	}
	registerApp(t, srv, "shop")
	base := srv.URL + "/api/v1/applications/shop"

	// No registration yet: 409.
	if code, _, body := call(t, http.MethodPost, base+"/fuzz-campaigns", srv.Admin, map[string]any{}); code != http.StatusConflict {
		t.Fatalf("campaign without a registration: %d %s; want 409", code, body)
	}
	reg := map[string]any{"openapi": api.URL + "/openapi.json", "target": api.URL,
		"authHeader": "Authorization", "authValue": "Bearer " + fuzztest.Token}
	if code, _, _ := call(t, http.MethodPut, base+"/api", srv.Viewer, reg); code != http.StatusForbidden {
		t.Fatalf("viewer registering an API: %d; want 403", code)
	}
	code, _, body := call(t, http.MethodPut, base+"/api", srv.Admin, reg)
	var view struct{ HasCredential bool }
	if code != http.StatusOK || strings.Contains(string(body), fuzztest.Token) || json.Unmarshal(body, &view) != nil || !view.HasCredential {
		t.Fatalf("registering the API: %d %s", code, body)
	}
	if code, _, _ := call(t, http.MethodPost, base+"/fuzz-campaigns", srv.Viewer, map[string]any{}); code != http.StatusForbidden {
		t.Fatalf("viewer starting a campaign: %d; want 403", code)
	}
	for _, bad := range []map[string]any{{"maxRequests": 1_000_000}, {"rate": 1e9}, {"operations": "(GET"}, {"budget": 1}} {
		if code, _, body := call(t, http.MethodPost, base+"/fuzz-campaigns", srv.Admin, bad); code != http.StatusBadRequest {
			t.Errorf("campaign options %v: %d %s; want 400", bad, code, body)
		}
	}

	start := time.Now()
	code, loc, body := call(t, http.MethodPost, base+"/fuzz-campaigns", srv.Admin, map[string]any{"maxRequests": 600, "seed": 7, "rate": 200, "secured": true})
	if code != http.StatusAccepted || !strings.HasPrefix(loc, "/api/v1/applications/shop/fuzz-campaigns/") {
		t.Fatalf("starting a campaign: %d %q %s", code, loc, body)
	}
	// One at a time per application.
	if code, _, body := call(t, http.MethodPost, base+"/fuzz-campaigns", srv.Admin, map[string]any{}); code != http.StatusConflict {
		t.Errorf("a second campaign while the first runs: %d %s; want 409", code, body)
	}
	c := waitCampaign(t, srv, loc)
	if c.State != store.CampaignDone {
		t.Fatalf("campaign %s: %s", c.State, c.Error)
	}
	var res fuzz.Result
	if err := json.Unmarshal(c.Report, &res); err != nil {
		t.Fatalf("report: %v", err)
	}
	t.Logf("campaign: %d requests, %d findings in %.1f s (%.1f s from the POST)", res.Requests, len(res.Findings), res.Seconds, time.Since(start).Seconds())
	// secured: the public healthz is replayed without credentials too.
	want := map[string]bool{"server-error createItem": false, "auth-bypass listAdminUsers": false, "leaked-secret getReport": false,
		"undeclared-status getItem": false, "auth-bypass healthz": false}
	for _, f := range res.Findings {
		if _, ok := want[f.Rule+" "+f.Operation]; ok {
			want[f.Rule+" "+f.Operation] = true
		}
	}
	for k, found := range want {
		if !found {
			t.Errorf("the campaign's report lacks %s", k)
		}
	}
	if c.Findings != len(res.Findings) || strings.Contains(string(c.Report), fuzztest.Token) || strings.Contains(string(c.Report), fuzztest.AWSKey) {
		t.Errorf("campaign: %d findings counted for %d reported, or the report holds the credential or the leaked key", c.Findings, len(res.Findings))
	}

	// The owner is notified: one fuzz.findings event naming the team.
	deadline := time.Now().Add(30 * time.Second)
	for len(rc.of(notify.EventFuzzFindings)) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	evs := rc.of(notify.EventFuzzFindings)
	if len(evs) != 1 {
		t.Fatalf("%d fuzz.findings events delivered; want 1", len(evs))
	}
	var ff notify.FuzzFindings
	if err := json.Unmarshal(evs[0].Data, &ff); err != nil {
		t.Fatal(err)
	}
	if ff.Application != "shop" || ff.Team != "payments" || ff.Contact != "payments-oncall" || ff.Report != loc ||
		len(ff.Findings)+ff.More != len(res.Findings) || strings.Contains(string(evs[0].Data), fuzztest.Token) {
		t.Errorf("fuzz.findings event: %s", evs[0].Data)
	}

	// A pinned parameter no operation has fails the campaign, saying so.
	_, loc2, _ := call(t, http.MethodPost, base+"/fuzz-campaigns", srv.Admin, map[string]any{"maxRequests": 10, "params": map[string]string{"namespace": "default"}})
	if c2 := waitCampaign(t, srv, loc2); c2.State != store.CampaignFailed || !strings.Contains(c2.Error, "no selected operation has a parameter namespace") {
		t.Errorf("campaign with an unknown pinned parameter: %s %q", c2.State, c2.Error)
	}

	// Listed, newest first, without the report; audited without the credential.
	code, _, body = call(t, http.MethodGet, base+"/fuzz-campaigns", srv.Viewer, nil)
	var list struct{ Campaigns []store.FuzzCampaign }
	if code != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list.Campaigns) != 2 ||
		list.Campaigns[1].State != store.CampaignDone || list.Campaigns[0].State != store.CampaignFailed || list.Campaigns[1].Report != nil {
		t.Errorf("listing campaigns: %d %s", code, body)
	}
	code, _, body = call(t, http.MethodGet, srv.URL+"/api/v1/audit", srv.Admin, nil)
	for _, action := range []string{"application.api.put", "fuzz.campaign.request"} {
		if code != http.StatusOK || !strings.Contains(string(body), action) {
			t.Errorf("audit log lacks %s: %d", action, code)
		}
	}
	if strings.Contains(string(body), fuzztest.Token) {
		t.Error("the audit log holds the API credential")
	}
}

// TestCampaignEgress: a campaign reaches only the registered hosts, and
// private addresses only where the server allows them.
func TestCampaignEgress(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	api := planted(t, false)
	t.Run("private address refused", func(t *testing.T) {
		// The server allows no private host but one that is not the API's.
		srv := servertest.Start(t, server.Config{WatchInterval: time.Hour, AllowPrivate: []string{"registry.invalid"}})
		registerApp(t, srv, "shop")
		base := srv.URL + "/api/v1/applications/shop"
		if code, _, body := call(t, http.MethodPut, base+"/api", srv.Admin, map[string]any{"openapi": api.URL + "/openapi.json", "target": api.URL}); code != http.StatusOK {
			t.Fatalf("registering: %d %s", code, body)
		}
		_, loc, _ := call(t, http.MethodPost, base+"/fuzz-campaigns", srv.Admin, map[string]any{"maxRequests": 50})
		c := waitCampaign(t, srv, loc)
		if c.State != store.CampaignFailed || !strings.Contains(c.Error, "not a public address") {
			t.Fatalf("campaign against 127.0.0.1 without an allowance: %s %q; want failed, refused address", c.State, c.Error)
		}
	})
	t.Run("registered hosts only", func(t *testing.T) {
		srv := servertest.Start(t, server.Config{WatchInterval: time.Hour})
		registerApp(t, srv, "shop")
		base := srv.URL + "/api/v1/applications/shop"
		for name, reg := range map[string]map[string]any{
			"target not allowed": {"openapi": api.URL + "/openapi.json", "target": "http://169.254.169.254", "allowedHosts": []string{strings.TrimPrefix(api.URL, "http://")}},
			"wildcard":           {"openapi": api.URL + "/openapi.json", "target": api.URL, "allowedHosts": []string{"*"}},
			"not http":           {"openapi": "file:///etc/passwd", "target": api.URL},
			"user info":          {"openapi": api.URL + "/openapi.json", "target": "http://u:p@127.0.0.1:1"},
			"half a credential":  {"openapi": api.URL + "/openapi.json", "target": api.URL, "authHeader": "Authorization"},
			"bad header":         {"openapi": api.URL + "/openapi.json", "target": api.URL, "authHeader": "Bad Header", "authValue": "x"},
		} {
			if code, _, body := call(t, http.MethodPut, base+"/api", srv.Admin, reg); code != http.StatusBadRequest {
				t.Errorf("%s: %d %s; want 400", name, code, body)
			}
		}
		// The document redirects to another host (which the egress policy
		// would allow: 127.0.0.1): the campaign does not follow, and the
		// other host gets nothing.
		var otherHits int
		var mu sync.Mutex
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			otherHits++
			mu.Unlock()
			io.WriteString(w, fuzztest.Spec)
		}))
		t.Cleanup(other.Close)
		redirect := httptest.NewServer(http.RedirectHandler(other.URL+"/openapi.json", http.StatusFound))
		t.Cleanup(redirect.Close)
		if code, _, body := call(t, http.MethodPut, base+"/api", srv.Admin, map[string]any{
			"openapi": redirect.URL + "/openapi.json", "target": redirect.URL}); code != http.StatusOK {
			t.Fatalf("registering: %d %s", code, body)
		}
		_, loc, _ := call(t, http.MethodPost, base+"/fuzz-campaigns", srv.Admin, map[string]any{"maxRequests": 50})
		c := waitCampaign(t, srv, loc)
		mu.Lock()
		defer mu.Unlock()
		if c.State != store.CampaignFailed || !strings.Contains(c.Error, "302") || otherHits != 0 {
			t.Fatalf("campaign whose document redirects elsewhere: %s %q, %d requests elsewhere; want failed on the 302, none", c.State, c.Error, otherHits)
		}
	})
}

// TestCampaignSurvivesRestart: a server stopped in the middle of a
// campaign runs it again, whole, when it starts again (the job is
// requeued), and records it once.
func TestCampaignSurvivesRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	srv := servertest.Start(t, server.Config{WatchInterval: time.Hour})
	api := planted(t, false)
	registerApp(t, srv, "shop")
	base := srv.URL + "/api/v1/applications/shop"
	if code, _, body := call(t, http.MethodPut, base+"/api", srv.Admin, map[string]any{
		"openapi": api.URL + "/openapi.json", "target": api.URL, "authHeader": "Authorization", "authValue": "Bearer " + fuzztest.Token}); code != http.StatusOK {
		t.Fatalf("registering: %d %s", code, body)
	}
	// 300 requests at 50/s: six seconds.
	_, loc, _ := call(t, http.MethodPost, base+"/fuzz-campaigns", srv.Admin, map[string]any{"maxRequests": 300, "rate": 50})
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, body := call(t, http.MethodGet, srv.URL+loc, srv.Viewer, nil)
		var c store.FuzzCampaign
		if json.Unmarshal(body, &c) == nil && c.State == store.CampaignRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign not running after 30 s: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	srv.Stop()
	srv.Restart(t)
	c := waitCampaign(t, srv, loc)
	var res fuzz.Result
	if c.State != store.CampaignDone || json.Unmarshal(c.Report, &res) != nil || res.Requests != 300 || len(res.Findings) != 0 {
		t.Fatalf("campaign after the restart: %s %q, %d requests, %d findings; want done, 300, none", c.State, c.Error, res.Requests, len(res.Findings))
	}
}
