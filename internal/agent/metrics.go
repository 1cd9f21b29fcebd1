package agent

import (
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
)

// checkLoopback refuses a metrics address that is not on the loopback
// interface: the metrics name containers and images.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("metrics address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("metrics address %q: want a loopback address (127.0.0.1:PORT, [::1]:PORT, localhost:PORT)", addr)
	}
	return nil
}

// writeMetrics writes st in Prometheus' text exposition format. Events
// per second is rate(bulwark_agent_execs_total) and
// rate(bulwark_agent_drift_total).
func writeMetrics(w io.Writer, st Status) {
	counter := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	counter("bulwark_agent_execs_total", "Execs decided in watched filesystems.", st.Stats.Execs)
	fmt.Fprintf(w, "# HELP bulwark_agent_drift_total Drifted execs, by verdict.\n# TYPE bulwark_agent_drift_total counter\n")
	fmt.Fprintf(w, "bulwark_agent_drift_total{verdict=\"refused\"} %d\nbulwark_agent_drift_total{verdict=\"reported\"} %d\n", st.Stats.Refused, st.Stats.Reported)
	counter("bulwark_agent_unattributed_total", "Execs on marked filesystems that match no watched container (allowed).", st.Stats.Unattributed)
	counter("bulwark_agent_hashed_total", "Files hashed (a cache miss).", st.Stats.Hashed)
	gauge("bulwark_agent_containers", "Containers watched.", int64(len(st.Containers)))
	fmt.Fprintf(w, "# HELP bulwark_agent_enforcement_state The enforcement state (1 for the current one).\n# TYPE bulwark_agent_enforcement_state gauge\n")
	for _, s := range []string{agentproto.StateEnforcingFanotify, agentproto.StateEnforcingBPFLSM, agentproto.StateDetectingOnly, agentproto.StateBroken, agentproto.StateOff} {
		v := 0
		if s == st.State {
			v = 1
		}
		fmt.Fprintf(w, "bulwark_agent_enforcement_state{state=%q} %d\n", s, v)
	}
	counter("bulwark_agent_canary_runs_total", "Canary execs of a drifted file (each must be refused).", st.Canary.Runs)
	counter("bulwark_agent_canary_failures_total", "Canary execs that were not refused: enforcement was not working.", st.Canary.Failures)
	ok := int64(0)
	if st.Canary.OK {
		ok = 1
	}
	gauge("bulwark_agent_canary_ok", "1 when the last canary exec was refused.", ok)
	fmt.Fprintf(w, "# HELP bulwark_agent_process_events_total Execs and exits in watched containers seen by the exec sensor.\n# TYPE bulwark_agent_process_events_total counter\n")
	fmt.Fprintf(w, "bulwark_agent_process_events_total{kind=\"exec\"} %d\nbulwark_agent_process_events_total{kind=\"exit\"} %d\nbulwark_agent_process_events_total{kind=\"connect\"} %d\n",
		st.Stats.ProcessExecs, st.Stats.ProcessExits, st.Stats.ProcessConnects)
	counter("bulwark_agent_executables_written_total", "Files with an execute bit written in watched containers (after the fact).", st.Stats.ExecutablesWritten)
	counter("bulwark_agent_mount_rereads_total", "Containers' mount tables read again after a mount report.", st.Stats.MountRereads)
	counter("bulwark_agent_process_events_lost_total", "Node exec/exit events the sensor's ring buffer dropped.", st.Stats.ProcessLost)
	counter("bulwark_agent_unheld_execs_killed_total", "Execs from mounts no mark holds that the exec sensor killed (prevent).", st.Stats.ProcessKilled)
	writeGateMetrics(w, st.Stats.Gate) // gate.go
	counter("bulwark_agent_bpf_events_lost_total", "Drift decided in the kernel but not reported (ring buffer full).", st.Stats.EventsLost)
	writeAllowlistMetrics(w, st.Stats.Allowlists) // allowsrv.go
	if sp := st.Spool; sp != nil {
		gauge("bulwark_agent_spool_events", "Events spooled and not yet acknowledged by the server.", int64(sp.Pending))
		gauge("bulwark_agent_spool_bytes", "Bytes of the spool on disk.", sp.Bytes)
		counter("bulwark_agent_spool_dropped_total", "Events dropped unsent because the spool was full.", int64(sp.Dropped))
	}
	if s := st.Sender; s != nil {
		counter("bulwark_agent_events_sent_total", "Events the server acknowledged.", s.Sent)
		counter("bulwark_agent_send_failures_total", "Failed sends (retried).", s.Failed)
		last := int64(0)
		if !s.LastSend.IsZero() {
			last = s.LastSend.Unix()
		}
		gauge("bulwark_agent_last_send_timestamp_seconds", "When a batch was last acknowledged.", last)
	}
}

func metricsHandler(status func() Status) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		writeMetrics(w, status())
	})
}
