package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/spool"
)

// podLabels keeps the CRI labels of a container (io.kubernetes.*: pod
// name, pod namespace, container name) and the secrets it asks for
// (agentproto.LabelSecrets), bounded.
func podLabels(all map[string]string) map[string]string {
	var out map[string]string
	for k, v := range all {
		if !strings.HasPrefix(k, "io.kubernetes.") && k != agentproto.LabelSecrets || len(k) > agentproto.MaxName || len(v) > agentproto.MaxField {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		if len(out) < agentproto.MaxLabels {
			out[k] = v
		}
	}
	return out
}

// Containers lists the watched containers, by id.
func (a *Agent) Containers() []agentproto.Container {
	a.mu.RLock()
	out := make([]agentproto.Container, 0, len(a.containers))
	budget := agentproto.MaxRanTotal
	for _, c := range a.containers {
		ran, dropped := c.ran.snapshot(min(budget, agentproto.MaxRanPerContainer))
		budget -= len(ran)
		out = append(out, agentproto.Container{ID: c.id, Namespace: c.namespace, Image: c.image, Labels: c.labels, Allowlist: c.listSource(), Mode: string(c.mode),
			Ran: ran, RanDropped: dropped, Gap: c.mountGap})
	}
	a.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(out) > agentproto.MaxContainers {
		out = out[:agentproto.MaxContainers]
	}
	return out
}

// Enforcement is the agent's enforcement state and why.
// The state follows the canary, not the agent's beliefs: enforcing only
// while the last canary exec was refused.
func (a *Agent) Enforcement() (state, reason string) {
	cs := a.canary.status()
	mode := a.strictest() // modes.go
	switch {
	case mode == ModeOff:
		return agentproto.StateOff, "mode off"
	case a.fan == nil && a.lsm == nil:
		return agentproto.StateBroken, a.degraded
	case cs.Error != "":
		return agentproto.StateBroken, cs.Error
	case !cs.OK:
		return agentproto.StateBroken, "the canary has not run yet"
	case mode == ModeDetect:
		return agentproto.StateDetectingOnly, "mode detect"
	case a.lsm != nil:
		return agentproto.StateEnforcingBPFLSM, a.degraded
	}
	return agentproto.StateEnforcingFanotify, a.degraded
}

// Heartbeat describes the node now.
func (a *Agent) Heartbeat(sp *spool.Spool) agentproto.Heartbeat {
	state, reason := a.Enforcement()
	hb := agentproto.Heartbeat{Mode: string(a.cfg.Mode), State: state, Reason: reason, Containers: a.Containers(), Kernel: kernelRelease()}
	if hi := a.hostInv.Load(); hi != nil { // the last host catalog (hostinv.go): the fleet index matches it
		hb.Distro, hb.Packages = hi.Distro, hi.Packages
	}
	if sp != nil {
		st := sp.Stats()
		hb.SpoolEvents, hb.SpoolBytes, hb.Dropped = st.Pending, st.Bytes, st.Dropped
	}
	return hb
}

// Status is what the agent writes to its status file for
// `bulwark-agent status`.
type Status struct {
	Time       time.Time              `json:"time"`
	PID        int                    `json:"pid"`
	Node       string                 `json:"node"`
	Server     string                 `json:"server,omitempty"`
	Mode       string                 `json:"mode"`
	State      string                 `json:"state"`
	Reason     string                 `json:"reason,omitempty"`
	Containers []agentproto.Container `json:"containers"`
	Stats      Stats                  `json:"stats"`
	Canary     CanaryStatus           `json:"canary"`
	Spool      *spool.Stats           `json:"spool,omitempty"`
	Sender     *SenderStats           `json:"sender,omitempty"`
}

// staleAfter: a status file older than this says the agent is not running.
const staleAfter = 15 * time.Second

// status gathers the agent's status.
func (a *Agent) status(node, server string, sp *spool.Spool, s *Sender) Status {
	hb := a.Heartbeat(nil)
	st := Status{Time: time.Now().UTC(), PID: os.Getpid(), Node: node, Server: server, Mode: hb.Mode, State: hb.State,
		Reason: hb.Reason, Containers: hb.Containers, Stats: a.Stats(), Canary: a.canary.status()}
	if sp != nil {
		ss := sp.Stats()
		st.Spool = &ss
	}
	if s != nil {
		ss := s.Stats()
		st.Sender = &ss
	}
	return st
}

// writeStatus writes st to path atomically (0644: nothing secret in it).
func writeStatus(path string, st Status) error {
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing status %q: %w", path, err)
	}
	return writeFileAtomic(path, b) // learn.go
}

// printStatus is `bulwark-agent status`: the status file for a person.
// It returns ExitError when the file is missing, damaged or stale.
func printStatus(path string, now time.Time, w io.Writer) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(w, "bulwark-agent: reading status %q: %v (is the agent running, with this --status-file?)\n", path, err)
		return ExitError
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		fmt.Fprintf(w, "bulwark-agent: reading status %q: %v\n", path, err)
		return ExitError
	}
	age := now.Sub(st.Time).Round(time.Second)
	fmt.Fprintf(w, "node:         %s (pid %d, status written %s ago)\n", st.Node, st.PID, age)
	state := st.State
	if st.Reason != "" {
		state += " (" + st.Reason + ")"
	}
	fmt.Fprintf(w, "mode:         %s\nenforcement:  %s\n", st.Mode, state)
	canaryLine := "not run"
	if !st.Canary.Last.IsZero() {
		canaryLine = "refused (enforcement proven)"
		if !st.Canary.OK {
			canaryLine = "FAILED: " + st.Canary.Error
		}
		canaryLine += fmt.Sprintf(", %s ago; %d runs, %d failed", now.Sub(st.Canary.Last).Round(time.Second), st.Canary.Runs, st.Canary.Failures)
	}
	fmt.Fprintf(w, "canary:       %s\n", canaryLine)
	fmt.Fprintf(w, "containers:   %d watched\n", len(st.Containers))
	for _, c := range st.Containers {
		line := fmt.Sprintf("  %s  %s  %s", c.Namespace, c.ID, c.Image)
		if c.Mode != "" {
			line += "  " + c.Mode
		}
		if c.Allowlist != "" {
			line += "  allowlist from " + c.Allowlist
		}
		fmt.Fprintln(w, line)
		if c.Gap != "" {
			fmt.Fprintf(w, "    gap: %s\n", c.Gap)
		}
	}
	fmt.Fprintf(w, "execs:        %d (%d refused, %d reported, %d unattributed)\n", st.Stats.Execs, st.Stats.Refused, st.Stats.Reported, st.Stats.Unattributed)
	if g := st.Stats.Gate; g.On || g.Stopped > 0 {
		scope := "node-wide (hostPID containers not held)"
		if g.Scope != "" {
			scope = "cgroup " + g.Scope
		}
		fmt.Fprintf(w, "gate:         %s, %s; %d execs held until adoption (%d continued, %d killed, %d failed, %d lost, %d continued by another and killed)\n",
			onOff(g.On), scope, g.Stopped, g.Continued, g.Killed, g.Failed, g.Lost, g.ContinuedByAnother)
	}
	if st.Spool != nil {
		fmt.Fprintf(w, "spool:        %d events waiting, %d bytes, %d dropped\n", st.Spool.Pending, st.Spool.Bytes, st.Spool.Dropped)
	}
	if st.Sender != nil {
		last := "never"
		if !st.Sender.LastSend.IsZero() {
			last = st.Sender.LastSend.Format(time.RFC3339) + " (" + now.Sub(st.Sender.LastSend).Round(time.Second).String() + " ago)"
		}
		fmt.Fprintf(w, "server:       %s\nlast send:    %s, %d events sent\n", st.Server, last, st.Sender.Sent)
		if st.Sender.LastError != "" {
			fmt.Fprintf(w, "last error:   %s\n", st.Sender.LastError)
		}
	} else {
		fmt.Fprintf(w, "server:       none (events are logged only)\n")
	}
	if age > staleAfter {
		fmt.Fprintf(w, "STALE: the status is %s old; the agent is not running or is stuck\n", age)
		return ExitError
	}
	return ExitOK
}

// statusMain is `bulwark-agent status [--status-file F]`.
func statusMain(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("bulwark-agent status", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("status-file", "/run/bulwark-agent/status.json", "the status file the agent writes")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bulwark-agent status: unexpected argument %q\n", fs.Arg(0))
		return ExitUsage
	}
	return printStatus(*path, time.Now(), stdout)
}
