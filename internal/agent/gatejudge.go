package agent

import (
	"bytes"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/execmon"
)

// judgeFile judges the exec the gate stopped in c (gate.go) as handle
// does a held one: the file the process runs (/proc/PID/exe, opened
// read-only: what it runs whatever name it was exec'd by) by c's rules,
// and whether c's marks hold it (an unheld file is drift in prevent, as
// the sensor's kill says). The loader check (loader.go) needs the kernel
// stack of an exec in progress and is not made: the exec is done.
func (a *Agent) judgeFile(c *container, ev execmon.Event, p *stopped) {
	pid := int(ev.PID)
	var d allowlist.Decision
	f, err := os.Open(procRoot + "/" + strconv.Itoa(pid) + "/exe")
	if err == nil {
		d, err = c.rules().Check(f, a.cache)
		f.Close()
	}
	held := a.heldBySensor(c, ev)
	now := time.Now()
	if err == nil && d.Allowed && held {
		a.settle(p, unix.SIGCONT)
		c.ran.exec(d.Digest, d.ImagePath)
		return
	}
	reason := ReasonNotInImage
	switch {
	case err != nil:
		reason = ReasonUnreadable
	case !held && unix.Mkdev(ev.Dev>>20, ev.Dev&(1<<20-1)) == a.memfdDev:
		reason = ReasonMemfd
	case !held:
		reason = ReasonUnheld
	}
	e := Event{Time: now.UTC(), Verdict: VerdictReported, Reason: ReasonBeforeAdoption + "/" + reason, PID: pid, Path: ev.Path,
		Container: c.id, Namespace: c.namespace, Image: c.image, Tree: procTree(pid)}
	if err != nil {
		e.Err = err.Error()
	} else {
		e.Digest = d.Digest.String()
	}
	if err == nil && c.learn != nil && c.learn.learn(d.Digest, ev.Path, now) {
		a.settle(p, unix.SIGCONT)
		e.Reason = ReasonLearning
		c.ran.exec(d.Digest, ev.Path)
		a.stats.reported.Add(1)
		a.cfg.Report(e)
		return
	}
	if c.mode == ModePrevent {
		if st := procStateOf(pid); st != "T" && st != "" {
			// Another process of its pid namespace (a pod sharing one)
			// sent it SIGCONT: it ran before its verdict.
			e.Err = "continued before its verdict (state " + st + "): it ran until killed"
			a.log.Warn("a process held by the gate was continued by another before its verdict", "container", c.id, "pid", pid, "path", ev.Path)
		}
		if !a.settle(p, unix.SIGKILL) {
			return // shutting down: continued, not judged
		}
		e.Verdict = VerdictRefused
		a.stats.refused.Add(1)
	} else {
		a.settle(p, unix.SIGCONT)
		a.stats.reported.Add(1)
		if err == nil {
			c.ran.exec(d.Digest, ev.Path)
		}
	}
	a.cfg.Report(e)
	a.replaceLater(c)
}

// procStateOf is the state letter of pid (/proc/PID/stat: T stopped), ""
// when it cannot be read.
func procStateOf(pid int) string {
	b, err := os.ReadFile(procRoot + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+3 > len(b) {
		return ""
	}
	return string(b[i+2 : i+3])
}
