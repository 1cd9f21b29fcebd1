package agent

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/spool"
)

// TestStatusAndMetrics: the status file the agent writes is what
// `bulwark-agent status` prints (and a stale one exits 1); the metrics
// carry the enforcement state, containers and spool; a metrics address
// off loopback is a usage error.
func TestStatusAndMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status.json")
	now := time.Now().UTC()
	st := Status{Time: now, PID: 7, Node: "node-1", Server: "https://bulwark", Mode: "prevent", State: agentproto.StateEnforcingFanotify,
		Containers: []agentproto.Container{{ID: "c1", Namespace: "default", Image: "sha256:aa", Allowlist: SourceServer}},
		Stats: Stats{Execs: 5, Refused: 2, Allowlists: AllowlistStats{Server: 1, Unreachable: 2},
			Gate: GateStats{On: true, Stopped: 4, Continued: 3, Killed: 1, Waited: 1500 * time.Millisecond, Scope: "/kubepods"}},
		Spool: &spool.Stats{Pending: 3, Bytes: 120, Dropped: 1}, Sender: &SenderStats{Sent: 9, LastSend: now}}
	if err := writeStatus(path, st); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := printStatus(path, now.Add(time.Second), &out); code != ExitOK {
		t.Fatalf("status: exit %d: %s", code, out.String())
	}
	for _, want := range []string{"enforcing (fanotify)", "1 watched", "3 events waiting", "1 dropped", "9 events sent", "allowlist from server",
		"gate:         on, cgroup /kubepods; 4 execs held until adoption (3 continued, 1 killed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := printStatus(path, now.Add(time.Minute), &out); code != ExitError || !strings.Contains(out.String(), "STALE") {
		t.Fatalf("stale status: exit %d: %s", code, out.String())
	}
	if code := printStatus(filepath.Join(t.TempDir(), "none"), now, &out); code != ExitError {
		t.Fatalf("missing status: exit %d", code)
	}
	out.Reset()
	writeMetrics(&out, st)
	for _, want := range []string{`bulwark_agent_enforcement_state{state="enforcing (fanotify)"} 1`, "bulwark_agent_containers 1",
		"bulwark_agent_spool_bytes 120", "bulwark_agent_spool_dropped_total 1", `bulwark_agent_drift_total{verdict="refused"} 2`,
		`bulwark_agent_allowlists_total{source="server"} 1`, `bulwark_agent_allowlist_fallbacks_total{reason="unreachable"} 2`,
		"bulwark_agent_gate_on 1", `bulwark_agent_gate_execs_total{outcome="killed"} 1`, "bulwark_agent_gate_wait_seconds_total 1.5"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	t.Setenv("BULWARK_AGENT_TOKEN", "")
	var stderr bytes.Buffer
	if code := Main(t.Context(), []string{"--mode", "off", "--metrics-address", "0.0.0.0:9464"}, &out, &stderr); code != ExitUsage {
		t.Fatalf("metrics on 0.0.0.0: exit %d, want %d", code, ExitUsage)
	}
	if code := Main(t.Context(), []string{"--mode", "off", "--server", "https://bulwark"}, &out, &stderr); code != ExitUsage {
		t.Fatalf("--server without a token: exit %d, want %d", code, ExitUsage)
	}
}
