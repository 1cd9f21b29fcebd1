package agent

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/bpflsm"
)

// TestLearnLSM learns from a BPF-LSM report as the agent reads one: the
// process that ran the program has exited (no /proc/TGID), so the file is
// hashed through the container's root (/proc/PID/root of its init); the
// kernel's report of the program's mapping (name only) is learning too,
// another file's is not; a report whose file changed since is not learned;
// nothing is learned once the window has closed. (The kernel's side, the
// window in detect and the relisting at lock, runs in the qemu guest:
// internal/bpflsm TestGuestBPFLSM.)
func TestLearnLSM(t *testing.T) {
	proc := t.TempDir()
	defer func(p string) { procRoot = p }(procRoot)
	procRoot = proc
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	prog := []byte("\x7fELF learned")
	if err := os.WriteFile(filepath.Join(root, "tmp/x"), prog, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(proc, "40"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(root, filepath.Join(proc, "40", "root")); err != nil { // the container's init
		t.Fatal(err)
	}
	id, err := bpflsm.FileIDOf(filepath.Join(root, "tmp/x"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := &container{id: "c1", pid: 40, cgroup: 7,
		learn: &learning{image: "sha256:img", start: now, end: now.Add(time.Hour), seen: map[allowlist.Digest]string{}}}
	a := &Agent{cache: allowlist.NewDigestCache(8), lsm: &lsm{}}

	exec := bpflsm.Event{Cgroup: 7, TGID: 41, Verdict: bpflsm.VerdictReported, Hook: bpflsm.HookExec, Path: "/tmp/x", File: id}
	if !a.learnLSM(c, exec) {
		t.Fatal("the exec report was not learned through the container's root")
	}
	if p, ok := c.learn.seen[allowlist.Digest(sha256.Sum256(prog))]; !ok || p != "/tmp/x" {
		t.Fatalf("learned %v, want the program's digest at /tmp/x", c.learn.seen)
	}
	mmap := bpflsm.Event{Cgroup: 7, TGID: 41, Verdict: bpflsm.VerdictReported, Hook: bpflsm.HookMmap, Path: "x", File: id}
	if !a.learnLSM(c, mmap) {
		t.Fatal("the mapping report of the learned program is not learning")
	}
	other := mmap
	other.File.Ino++
	if a.learnLSM(c, other) {
		t.Fatal("the mapping report of another file is learning")
	}
	changed := exec
	changed.File.CtimeSec++
	if a.learnLSM(c, changed) {
		t.Fatal("a report whose file changed since was learned")
	}
	refused := exec
	refused.Verdict = bpflsm.VerdictRefused
	if a.learnLSM(c, refused) {
		t.Fatal("a refused exec was learned")
	}
	c.learn.end = now.Add(-time.Second)
	if a.learnLSM(c, exec) || a.learnLSM(c, mmap) {
		t.Fatal("learned after the window closed")
	}
}
