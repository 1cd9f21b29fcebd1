package cli

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// bulwark runtime over the real API handler on a real store, its running
// inventory fed one heartbeat.
func TestRuntimeCommands(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	auditor := api.NewAuditor(st, "")
	h := api.New(st, auditor, nil, nil)
	x := fleet.New(nil, nil)
	x.Observe(agentproto.Heartbeat{Node: "node-1", Mode: "prevent", State: agentproto.StateEnforcingFanotify, Kernel: "6.1.0",
		Region: "eu", Containers: []agentproto.Container{{ID: "c1", Namespace: "k8s.io", Image: "sha256:" + strings.Repeat("a", 64),
			Labels: map[string]string{agentproto.LabelPodName: "web-1", agentproto.LabelPodNamespace: "shop", agentproto.LabelContainer: "web"}}}}, time.Now())
	h.UseFleet(x, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	viewer, err := api.CreateToken(t.Context(), auditor, "test", "v", store.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(viewer.Token+"\n"), 0o600)
	flags := []string{"--server", srv.URL, "--token-file", tokenFile}

	out, errOut, code := run(t, append([]string{"runtime", "nodes"}, flags...)...)
	if code != 0 || !strings.Contains(out, "node-1") || !strings.Contains(out, "enforcing (fanotify)") || !strings.Contains(out, "6.1.0") {
		t.Errorf("nodes: %d %s %s", code, out, errOut)
	}
	out, _, code = run(t, append([]string{"runtime", "workloads", "--namespace", "shop"}, flags...)...)
	if code != 0 || !strings.Contains(out, "web-1") || !strings.Contains(out, "sha256:aaaaaaaaaaa") {
		t.Errorf("workloads: %d %s", code, out)
	}
	out, _, code = run(t, append([]string{"runtime", "workloads", "--namespace", "other"}, flags...)...)
	if code != 0 || strings.Contains(out, "web-1") {
		t.Errorf("workloads of another namespace: %d %s", code, out)
	}
	out, _, code = run(t, append([]string{"runtime", "running", "CVE-2099-1"}, flags...)...)
	if code != 0 || strings.Contains(out, "web-1") {
		t.Errorf("running: %d %s", code, out)
	}
	out, _, code = run(t, append([]string{"runtime", "responses", "--json"}, flags...)...)
	if code != 0 || !strings.Contains(out, `"responses": []`) {
		t.Errorf("responses: %d %s", code, out)
	}
	out, _, code = run(t, append([]string{"runtime", "drift"}, flags...)...)
	if code != 0 || !strings.Contains(out, "VERDICT") {
		t.Errorf("drift: %d %s", code, out)
	}
	// A wrong token is a clear error, exit 2.
	os.WriteFile(tokenFile, []byte("bwk_wrong"), 0o600)
	_, errOut, code = run(t, append([]string{"runtime", "nodes"}, flags...)...)
	if code != ExitError || !strings.Contains(errOut, "401") || !strings.Contains(errOut, "invalid token") {
		t.Errorf("wrong token: %d %s", code, errOut)
	}
	t.Setenv("BULWARK_TOKEN", "")
	_, errOut, code = run(t, "runtime", "nodes", "--server", srv.URL)
	if code != ExitError || !strings.Contains(errOut, "no API token") {
		t.Errorf("no token: %d %s", code, errOut)
	}
}
