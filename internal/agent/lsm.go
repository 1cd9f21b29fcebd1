package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/bpflsm"
)

// lsm is the BPF-LSM mechanism: the programs and the cgroup v2 hierarchy
// the kernel names cgroups by (bpf_get_current_cgroup_id).
type lsm struct {
	enf *bpflsm.Enforcer

	mu      sync.Mutex
	learned map[learnedFile]bool // identities learned in open windows (learnLSM)
}

// learnedFile is a file learned in a cgroup's window, as the kernel names
// it in the reports of its mappings.
type learnedFile struct {
	cgroup uint64
	dev    uint32
	ino    uint64
}

// maxLearnedFiles bounds lsm.learned; past it the set starts over (a
// mapping report of an older learned file is then mapped-not-in-image).
const maxLearnedFiles = 65536

func newLSM(enf *bpflsm.Enforcer) *lsm { return &lsm{enf: enf} }

// mountinfoPath is read to find the cgroup v2 hierarchy (a variable for
// tests).
var mountinfoPath = "/proc/self/mountinfo"

// cgroup2Mount finds where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup
// on a v2 host, /sys/fs/cgroup/unified on a hybrid one.
func cgroup2Mount() (string, error) {
	f, err := os.Open(mountinfoPath)
	if err != nil {
		return "", fmt.Errorf("finding the cgroup v2 mount: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields := strings.Fields(pre)
		if !ok || len(fields) < 5 || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		return unescapeMount(fields[4]), nil
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("finding the cgroup v2 mount: %w", err)
	}
	return "", errors.New("finding the cgroup v2 mount: none mounted (BPF-LSM names processes by their cgroup v2)")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupID is the cgroup v2 id of pid's cgroup: the inode number of its
// directory in the v2 hierarchy, which is what the kernel's
// bpf_get_current_cgroup_id returns for the process.
func cgroupID(pid int) (uint64, error) {
	mnt, err := cgroup2Mount()
	if err != nil {
		return 0, err
	}
	p, err := cgroupV2Path(pid)
	if err != nil {
		return 0, err
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(mnt, p), &st); err != nil {
		return 0, fmt.Errorf("reading the cgroup v2 id of pid %d: %w", pid, err)
	}
	return st.Ino, nil
}

// cgroupV2Path is pid's cgroup in the unified hierarchy ("0::" of
// /proc/PID/cgroup), cleaned, relative to the cgroup2 mount.
func cgroupV2Path(pid int) (string, error) {
	b, err := os.ReadFile(path.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", fmt.Errorf("reading the cgroups of pid %d: %w", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return path.Clean("/" + p), nil
		}
	}
	return "", fmt.Errorf("reading the cgroup v2 id of pid %d: no cgroup v2 line", pid)
}

// watch lists a container's files for its cgroup and then watches the
// cgroup in the container's mode: the kernel decides from then on. Mappings
// are judged too when the image's list knows its libraries.
func (m *lsm) watch(ctx context.Context, c *container, root string, cache *allowlist.DigestCache) error {
	cg, err := cgroupID(int(c.pid))
	if err != nil {
		return err
	}
	mmap := c.rules().List.Libraries
	lc, err := m.enf.Compile(ctx, cg, root, c.rules().List, cache, mmap)
	if err != nil {
		return err
	}
	mode := lsmMode(c.mode)
	if c.learn.open(time.Now()) {
		mode = bpflsm.ModeDetect // the window: drift runs, is reported and learned
	}
	if err := m.enf.Watch(cg, mode, mmap); err != nil {
		_ = m.enf.Release(cg, lc)
		return err
	}
	c.cgroup, c.lsmFiles = cg, lc
	return nil
}

// relistLSM compiles every container of image again from its (locked)
// list and watches it in its own mode; entries no longer listed are
// removed after the new ones are in, so nothing listed is ever missing.
func (a *Agent) relistLSM(ctx context.Context, image string) {
	a.mu.RLock()
	var cs []*container
	for _, c := range a.containers {
		if c.image == image && c.lsmFiles != nil {
			cs = append(cs, c)
		}
	}
	a.mu.RUnlock()
	for _, c := range cs {
		root := filepath.Join(procRoot, strconv.Itoa(int(c.pid)), "root")
		lc, err := a.lsm.enf.Relist(ctx, c.cgroup, root, c.rules().List, a.cache, c.rules().List.Libraries, lsmMode(c.mode), c.lsmFiles)
		if err != nil {
			a.log.Error("listing a container again after its learning window", "container", c.id, "error", err)
		}
		if lc == nil {
			continue
		}
		a.mu.Lock()
		c.lsmFiles = lc
		a.mu.Unlock()
	}
}

// learnLSM records what a BPF-LSM report in a learning window ran: the
// file is hashed through the process's root, or its container's once the
// process has exited (a short program has, by the time its report is
// read), and only if it is still the file the kernel judged
// (bpflsm.ReportedContent). With mmap checks the kernel's mapping of a
// program is reported too, by file name only: it is learning when its
// identity was learned from the exec's report.
func (a *Agent) learnLSM(c *container, ev bpflsm.Event) bool {
	if c.learn == nil || ev.Verdict != bpflsm.VerdictReported {
		return false
	}
	key := learnedFile{cgroup: c.cgroup, dev: ev.File.Dev, ino: ev.File.Ino}
	if ev.Hook != bpflsm.HookExec {
		a.lsm.mu.Lock()
		known := a.lsm.learned[key]
		a.lsm.mu.Unlock()
		return known && c.learn.open(time.Now())
	}
	for _, pid := range []int{int(ev.TGID), int(c.pid)} {
		d, err := bpflsm.ReportedContent(filepath.Join(procRoot, strconv.Itoa(pid), "root"), ev, a.cache)
		if err == nil {
			if !c.learn.learn(d, ev.Path, time.Now()) {
				return false
			}
			a.lsm.mu.Lock()
			if a.lsm.learned == nil || len(a.lsm.learned) >= maxLearnedFiles {
				a.lsm.learned = map[learnedFile]bool{}
			}
			a.lsm.learned[key] = true
			a.lsm.mu.Unlock()
			return true
		}
		if errors.Is(err, bpflsm.ErrNotReported) {
			return false
		}
	}
	return false
}

// unwatch stops deciding for a container's cgroup and empties its list.
func (m *lsm) unwatch(c *container) {
	if c.lsmFiles == nil {
		return
	}
	_ = m.enf.Unwatch(c.cgroup)
	_ = m.enf.Release(c.cgroup, c.lsmFiles)
}

func lsmMode(m Mode) bpflsm.Mode {
	if m == ModePrevent {
		return bpflsm.ModePrevent
	}
	return bpflsm.ModeDetect
}

// ReasonModified: an image file changed after it was listed (BPF-LSM).
const ReasonModified = "modified"

// ReasonMapped: a file mapped executable (the loader trick, a library
// planted at run time) whose content is not the image's (BPF-LSM).
const ReasonMapped = "mapped-not-in-image"

// serveLSM turns the program's drift reports into events, attributed by
// cgroup id, until the Enforcer is closed.
func (a *Agent) serveLSM() error {
	for {
		ev, err := a.lsm.enf.ReadEvent()
		if errors.Is(err, bpflsm.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		c := a.watchedCgroup(ev.Cgroup)
		if c == nil {
			continue // the canary's, or a container already gone
		}
		e := Event{Time: time.Now().UTC(), Verdict: VerdictReported, Reason: ReasonNotInImage, PID: int(ev.TGID), Path: ev.Path,
			Container: c.id, Namespace: c.namespace, Image: c.image}
		if ev.Verdict == bpflsm.VerdictRefused {
			e.Verdict = VerdictRefused
		}
		switch {
		case a.learnLSM(c, ev):
			e.Reason = ReasonLearning
		case ev.Hook != bpflsm.HookExec:
			e.Reason = ReasonMapped
		case ev.Reason == bpflsm.ReasonModified:
			e.Reason = ReasonModified
		}
		a.cfg.Report(e)
	}
}

// watchedCgroup is the watched container of a cgroup v2 id; nil for none,
// or for the canary's.
func (a *Agent) watchedCgroup(cg uint64) *container {
	a.mu.RLock()
	c := a.byCgroup[cg]
	a.mu.RUnlock()
	if c == nil || c.canary {
		return nil
	}
	return c
}
