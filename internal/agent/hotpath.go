package agent

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/fanotify"
)

// maxUnfinished bounds the answered events whose bookkeeping (descriptor
// close, counters, what ran, reports) serve puts off while more events
// wait: an exec storm delays its own reports by at most this many events.
const maxUnfinished = 64

// serve reads exec events on a thread of its own and answers those it can
// from memory (unattributed, or a file identity seen before) at once; a
// file not seen before goes to a worker to be hashed. Every event is
// answered exactly once and closed once.
//
// What follows an answer (closing the event's descriptor, counters, what
// ran, the report of a refusal) waits until no event does: after a batch
// serve reads again at once, without poll(2), and finishes the answered
// events only when the queue is empty (or maxUnfinished are waiting). The
// second event of an exec (a script's interpreter, a dynamic program's
// loader in the container) is then read and answered before the first
// one's bookkeeping, and a storm's events cost a read each, not a poll and
// a read (docs/decisions-runtime.md).
func (a *Agent) serve(ctx context.Context) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	work := make(chan fanotify.Event, 1024)
	var wg sync.WaitGroup
	for range a.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range work {
				if x, ok := a.handle(ev, false); ok {
					a.finish(&x)
				}
			}
		}()
	}
	defer func() { close(work); wg.Wait() }()
	buf := make([]byte, 64<<10)
	var evs []fanotify.Event
	var done []answered // answered, not finished
	finishAll := func() {
		for i := range done {
			a.finish(&done[i])
			done[i] = answered{}
		}
		done = done[:0]
	}
	defer finishAll()
	more := false // the last read returned events: read again before polling
	for {
		var err error
		if more {
			evs, err = a.fan.ReadNow(buf, evs[:0])
		} else {
			evs, err = a.fan.Read(buf, evs[:0])
		}
		for _, ev := range evs {
			x, ok := a.handle(ev, true)
			if !ok {
				work <- ev
				continue
			}
			done = append(done, x)
		}
		if errors.Is(err, fanotify.ErrClosed) {
			return ctx.Err()
		}
		if err != nil {
			return err
		}
		more = len(evs) > 0
		if !more || len(done) >= maxUnfinished {
			finishAll()
		}
	}
}

// answered is an exec handle decided and answered; finish does the rest.
type answered struct {
	ev      fanotify.Event
	file    *os.File   // owns ev.Fd when a worker hashed the file
	c       *container // nil: not a watched container's exec
	id      allowlist.Identity
	ierr    error
	d       allowlist.Decision
	err     error
	allowed bool
	loader  bool   // a direct exec of the ELF interpreter (loader.go)
	learned bool   // allowed by a learning window (learn.go)
	path    string // the learned file's name
	tree    string // the caller's process tree (refusals and reports)
	at      time.Time
}

// drifted is what a report names a drifted file version by: its name and
// its digest, as text (remembered by identity for a second: a storm's
// reports do not readlink and format the digest each).
type drifted struct {
	path, digest string
	d            allowlist.Digest
}

// handle decides on one exec and answers it; what is not needed for the
// answer is left to finish. With fast set it only answers what needs no
// hashing and returns false for the rest, untouched (ev still open and
// unanswered).
func (a *Agent) handle(ev fanotify.Event, fast bool) (answered, bool) {
	x := answered{ev: ev}
	x.id, x.ierr = allowlist.IdentityOfFd(ev.Fd)
	x.c = a.owner(x.id, x.ierr, ev.PID)
	c := x.c
	if c == nil {
		// Not a watched container's file or process (the host, or a
		// runtime helper): out of scope, allowed.
		a.answer(ev, true)
		return x, true
	}
	if fast {
		var ok bool
		if x.ierr == nil {
			x.d, ok = c.rules().Lookup(x.id)
		}
		if !ok {
			return answered{}, false
		}
	} else {
		x.file = os.NewFile(uintptr(ev.Fd), "exec") // owns ev.Fd from here
		x.d, x.err = c.rules().Check(x.file, a.cache)
	}
	x.loader = x.err == nil && x.d.Allowed && a.directLoader(c, ev.PID, x.d.ImagePath) // loader.go
	if x.err == nil && x.d.Allowed && !x.loader {
		x.allowed = true
		a.answer(ev, true)
		return x, true
	}
	x.at = time.Now()
	if x.err == nil && c.learn != nil {
		x.path = fdPath(ev.Fd)
		x.learned = c.learn.learn(x.d.Digest, x.path, x.at)
	}
	// The caller waits for the answer: its process tree is whole now (a
	// refused child exits right after).
	if !c.canary && !x.learned {
		x.tree = a.trees.get(ev.PID, x.at, func() string { return procTree(ev.PID) })
	}
	a.answer(ev, x.learned || c.mode != ModePrevent)
	return x, true
}

// finish does what follows an answer: counts it, records what ran,
// reports a drifted exec and closes the event's descriptor, once.
func (a *Agent) finish(x *answered) {
	defer x.close()
	a.stats.execs.Add(1)
	c := x.c
	if c == nil {
		a.stats.unattributed.Add(1)
		return
	}
	if x.allowed {
		a.stats.allowed.Add(1)
		c.ran.exec(x.d.Digest, x.d.ImagePath) // ran.go
		return
	}
	if c.canary {
		return // the canary's own exec: proven by its EPERM, not reported
	}
	e := Event{Time: x.at.UTC(), Verdict: VerdictReported, Reason: ReasonNotInImage, PID: x.ev.PID,
		Container: c.id, Namespace: c.namespace, Image: c.image}
	if x.learned {
		e.Reason, e.Digest, e.Path = ReasonLearning, x.d.Digest.String(), x.path
		c.ran.exec(x.d.Digest, x.path)
		a.stats.reported.Add(1)
		a.cfg.Report(e)
		return
	}
	prevent := c.mode == ModePrevent
	if prevent {
		e.Verdict = VerdictRefused
		a.stats.refused.Add(1)
	} else {
		a.stats.reported.Add(1)
	}
	if x.loader {
		e.Reason = ReasonLoader
	}
	fd := x.ev.Fd
	if x.ierr == nil {
		n := a.paths.get(x.id, x.at, func() drifted { return drifted{path: fdPath(fd), digest: x.d.Digest.String(), d: x.d.Digest} })
		e.Path = n.path
		if x.err == nil && n.d == x.d.Digest {
			e.Digest = n.digest
		}
	} else {
		e.Path = fdPath(fd)
	}
	if x.err != nil {
		e.Reason, e.Err = ReasonUnreadable, x.err.Error()
	} else if e.Digest == "" {
		e.Digest = x.d.Digest.String()
	}
	if x.err == nil && !prevent {
		c.ran.exec(x.d.Digest, e.Path) // it ran (detect)
	}
	e.Tree = x.tree
	a.cfg.Report(e)
	a.replaceLater(c)
}

// close closes the event's descriptor (through the worker's os.File when
// it owns it).
func (x *answered) close() {
	if x.file != nil {
		x.file.Close()
		return
	}
	x.ev.Close()
}

func (a *Agent) answer(ev fanotify.Event, allow bool) {
	var err error
	if allow {
		err = a.fan.Allow(ev)
	} else {
		err = a.fan.Deny(ev)
	}
	if err != nil {
		a.log.Error("answering an exec", "pid", ev.PID, "error", err)
	}
}
