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

	"golang.org/x/sys/unix"

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
	drift := append(canary.Program(), "drift"...)
	for name, content := range map[string][]byte{"known": known, "drift": drift} {
		if err := os.WriteFile(filepath.Join(root, name), content, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	before := openFds(t)
	const rounds = 20
	execPairs(t, filepath.Join(root, "known"), filepath.Join(root, "drift"), rounds)
	s := waitStats(a, func(s Stats) bool { return s.Execs >= 2*rounds && s.Refused+s.Allowed >= 2*rounds })
	waitReports(&mu, &events, rounds)
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
	// Name and digest are remembered by identity: every report has both.
	for _, e := range events {
		if e.Digest != digestOf(drift) || e.Path != filepath.Join(root, "drift") {
			t.Fatalf("report %+v: want digest %s and path %s", e, digestOf(drift), filepath.Join(root, "drift"))
		}
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

// TestScriptAndInterpreterBothDecided: a script whose interpreter is in the
// same container raises two events on one exec (the script, then the
// kernel's open of its interpreter); serve reads the second before
// finishing the first (hotpath.go). Both are decided on their own: a
// listed script runs with a listed interpreter and is refused with a
// drifted one, each event counted once, the refusal naming the
// interpreter, no descriptor left open.
func TestScriptAndInterpreterBothDecided(t *testing.T) {
	needRoot(t)
	var mu sync.Mutex
	var events []Event
	a, err := New(Config{Mode: ModePrevent, Mechanism: MechanismFanotify, CanaryDir: t.TempDir(),
		Report: func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	stop := serveOnly(t, a)
	defer stop()
	dir := t.TempDir() // the container's root is only known once mounted
	known := append(canary.Program(), "known"...)
	files := map[string][]byte{"known": known, "drift": append(canary.Program(), "drift"...)}
	var inv []sbom.File
	root := filepath.Join(dir, "root")
	for _, s := range []string{"ok", "bad"} {
		interp := map[string]string{"ok": "known", "bad": "drift"}[s]
		files[s] = []byte("#!" + filepath.Join(root, interp) + "\n")
		inv = append(inv, sbom.File{Path: "/" + s, Type: "file", Mode: "0755", Digest: digestOf(files[s])})
	}
	inv = append(inv, sbom.File{Path: "/known", Type: "file", Mode: "0755", Digest: digestOf(known)})
	list, err := allowlist.FromInventory("sha256:"+strings.Repeat("d", 64), inv, allowlist.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bulwark-test", root, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), content, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.WatchDir("ctr", "test", "", root, list); err != nil {
		t.Fatal(err)
	}
	before := openFds(t)
	const rounds = 10
	execPairs(t, filepath.Join(root, "ok"), filepath.Join(root, "bad"), rounds)
	s := waitStats(a, func(s Stats) bool { return s.Execs >= 4*rounds })
	waitReports(&mu, &events, rounds)
	if s.Execs != 4*rounds || s.Allowed != 3*rounds || s.Refused != rounds {
		t.Errorf("stats %+v, want %d events, %d allowed, %d refused", s, 4*rounds, 3*rounds, rounds)
	}
	if after := openFds(t); after > before {
		t.Errorf("%d descriptors open after the execs, %d before", after, before)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != rounds || events[0].Path != filepath.Join(root, "drift") || events[0].Verdict != VerdictRefused {
		t.Errorf("%d reports, first %+v; want %d refusals of %s", len(events), events, rounds, filepath.Join(root, "drift"))
	}
}

// execPairs execs ok, which must run, and bad, which must be refused,
// rounds times each.
func execPairs(t *testing.T, ok, bad string, rounds int) {
	t.Helper()
	for range rounds {
		if got := execVia(t, ok); got != "ran" {
			t.Fatalf("listed exec of %s: %s", ok, got)
		}
		if got := execVia(t, bad); got != "eperm" {
			t.Fatalf("drifted exec of %s: %s", bad, got)
		}
	}
}

// waitReports waits (5 s at most) for n reports: they follow the answers.
func waitReports(mu *sync.Mutex, events *[]Event, n int) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		got := len(*events)
		mu.Unlock()
		if got >= n {
			return
		}
	}
}
