package agent

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"
)

// TestProbeBPFLSMLogs: in detect or prevent the agent says at start whether
// BPF-LSM is usable and, when not, why; in off it probes nothing.
func TestProbeBPFLSMLogs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the probe loads a BPF program: needs root")
	}
	var buf bytes.Buffer
	probeBPFLSM(slog.New(slog.NewJSONHandler(&buf, nil)), ModeOff)
	if buf.Len() != 0 {
		t.Fatalf("mode off logged %q", buf.String())
	}
	probeBPFLSM(slog.New(slog.NewJSONHandler(&buf, nil)), ModePrevent)
	out := buf.String()
	t.Log(out)
	switch {
	case strings.Contains(out, "bpf-lsm unavailable"):
		if !strings.Contains(out, `"reason":"bpf-lsm unavailable at `) {
			t.Fatalf("no reason given: %s", out)
		}
	case strings.Contains(out, "bpf-lsm available"):
	default:
		t.Fatalf("no probe result logged: %s", out)
	}
}
