package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/fuzz"
	"github.com/bulwark-sec/bulwark/internal/fuzz/fuzztest"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
)

// TestFuzzCampaignCommands: `bulwark fuzz campaign register`, `start
// --wait` and `show` against a running server and the planted-fault API;
// the credential goes in from the environment and comes out nowhere.
func TestFuzzCampaignCommands(t *testing.T) {
	srv := servertest.Start(t, server.Config{WatchInterval: time.Hour, APILimits: api.Limits{Rate: -1}})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, fuzztest.Spec) })
	mux.Handle("/", (&fuzztest.Server{Faulty: true}).Handler())
	target := httptest.NewServer(mux)
	t.Cleanup(target.Close)
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte(srv.Admin+"\n"), 0o600)
	conn := []string{"--server", srv.URL, "--token-file", tok}
	if _, errOut, code := run(t, append([]string{"fuzz", "campaign", "start", "shop"}, conn...)...); code != ExitError || !strings.Contains(errOut, "not found") {
		t.Fatalf("start for a missing application: %d %s", code, errOut)
	}
	cl := &apiClient{base: srv.URL, token: srv.Admin, http: http.DefaultClient}
	if err := cl.do(t.Context(), http.MethodPost, "/api/v1/applications", map[string]any{"name": "shop", "repositories": []string{"shop/*"}}, nil); err != nil {
		t.Fatal(err)
	}

	t.Setenv(fuzz.AuthEnv+"1", "Bearer "+fuzztest.Token)
	out, errOut, code := run(t, append([]string{"fuzz", "campaign", "register", "shop", "--openapi", target.URL + "/openapi.json",
		"--target", target.URL, "--auth-header", "Authorization"}, conn...)...)
	if code != ExitOK || !strings.Contains(out, "credential true") {
		t.Fatalf("register: %d %s %s", code, out, errOut)
	}
	out, errOut, code = run(t, append([]string{"fuzz", "campaign", "start", "shop", "--max-requests", "400", "--rate", "200",
		"--wait", "60s", "--format", "json"}, conn...)...)
	var res fuzz.Result
	if code != ExitFindings || json.Unmarshal([]byte(out), &res) != nil || len(res.Findings) < 5 || res.Requests != 400 {
		t.Fatalf("start --wait: exit %d, %d findings in %d requests; stderr %s", code, len(res.Findings), res.Requests, errOut)
	}
	if strings.Contains(out+errOut, fuzztest.Token) {
		t.Error("the credential is in the output")
	}
	out, _, code = run(t, append([]string{"fuzz", "campaign", "show", "shop", "1", "--format", "sarif"}, conn...)...)
	if code != ExitFindings || !strings.Contains(out, `"ruleId": "server-error"`) {
		t.Fatalf("show: exit %d %.300s", code, out)
	}
	for name, args := range map[string][]string{
		"bad id":       {"fuzz", "campaign", "show", "shop", "x"},
		"no campaign":  {"fuzz", "campaign", "show", "shop", "99"},
		"bad budget":   {"fuzz", "campaign", "start", "shop", "--max-requests", "1000000"},
		"bad format":   {"fuzz", "campaign", "show", "shop", "1", "--format", "xml"},
		"no auth env":  {"fuzz", "campaign", "register", "shop", "--openapi", target.URL, "--target", target.URL, "--auth-header", "X-Key"},
		"not a target": {"fuzz", "campaign", "register", "shop", "--openapi", "file:///etc/passwd", "--target", target.URL},
	} {
		if name == "no auth env" {
			t.Setenv(fuzz.AuthEnv+"1", "")
		}
		if _, errOut, code := run(t, append(args, conn...)...); code != ExitError || errOut == "" {
			t.Errorf("%s: exit %d, stderr %q; want 2 and a message", name, code, errOut)
		}
	}
}
