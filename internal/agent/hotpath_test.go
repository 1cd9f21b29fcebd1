package agent

import (
	"bytes"
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/canary"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// TestExecDescriptorsAnsweredAndClosedOnce: the listener hands the agent
// raw descriptors (no os.File, no finalizer to close a forgotten one), so
// every path must answer once and close once: a listed file hashed by a
// worker then allowed from the cache, a drifted one refused on both paths.
// After the execs the process holds no more descriptors than before, no
// answer failed (a second answer to one event is an error from the
// kernel), every exec was counted once, and the refusal names the file.
func TestExecDescriptorsAnsweredAndClosedOnce(t *testing.T) {
	needRoot(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	var events []Event
	a, err := New(Config{Mode: ModePrevent, Mechanism: MechanismFanotify, CanaryDir: t.TempDir(),
		Log:    slog.New(slog.NewTextHandler(&logs, nil)),
		Report: func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	stop := serveOnly(t, a)
	defer stop()
	known := append(canary.Program(), "known"...)
	list, err := allowlist.FromInventory("sha256:"+strings.Repeat("c", 64),
		[]sbom.File{{Path: "/known", Type: "file", Mode: "0755", Digest: digestOf(known)}}, allowlist.Config{})
	if err != nil {
		t.Fatal(err)
	}
	root := fakeContainer(t, a, "", list)
	for name, content := range map[string][]byte{"known": known, "drift": append(canary.Program(), "drift"...)} {
		if err := os.WriteFile(filepath.Join(root, name), content, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	before := openFds(t)
	const rounds = 20
	for range rounds {
		if got := execVia(t, filepath.Join(root, "known")); got != "ran" {
			t.Fatalf("listed exec: %s", got)
		}
		if got := execVia(t, filepath.Join(root, "drift")); got != "eperm" {
			t.Fatalf("drifted exec: %s", got)
		}
	}
	s := waitStats(a, func(s Stats) bool { return s.Execs >= 2*rounds && s.Refused+s.Allowed >= 2*rounds })
	// Reports follow the answers: wait for the last one.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(events)
		mu.Unlock()
		if n >= rounds {
			break
		}
	}
	if s.Execs != 2*rounds || s.Allowed != rounds || s.Refused != rounds {
		t.Errorf("stats %+v, want %d execs, %d allowed, %d refused", s, 2*rounds, rounds, rounds)
	}
	if after := openFds(t); after > before {
		t.Errorf("%d descriptors open after %d execs, %d before: event descriptors leak", after, 2*rounds, before)
	}
	if strings.Contains(logs.String(), "answering an exec") {
		t.Errorf("an answer failed: %s", logs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != rounds || events[0].Path != filepath.Join(root, "drift") || events[rounds-1].Path != events[0].Path || events[0].Verdict != VerdictRefused {
		t.Errorf("%d reports, first %+v; want %d refusals naming %s", len(events), events, rounds, filepath.Join(root, "drift"))
	}
}

func digestOf(b []byte) string { return allowlist.Digest(sha256.Sum256(b)).String() }

// openFds counts this process's open descriptors, once they settle (the
// helper processes' pipes close as they are reaped).
func openFds(t *testing.T) int {
	t.Helper()
	n := -1
	for range 50 {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) == n {
			return n
		}
		n = len(ents)
		time.Sleep(20 * time.Millisecond)
	}
	return n
}
