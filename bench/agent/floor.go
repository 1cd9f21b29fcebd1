package main

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"

	"github.com/bulwark-sec/bulwark/internal/fanotify"
)

// floor is the least a fanotify exec listener can do: read, answer a fixed
// verdict, close; no identity, no lookup. What it costs is the kernel's
// round trip (and the wake-ups) on this machine; what the agent costs on
// top of it is the agent's. With readAgain it reads again at once after a
// batch, polling only when the queue was empty, as the agent does
// (internal/agent/hotpath.go); without, it polls before every read.
type floor struct {
	l      *fanotify.Listener
	allow  atomic.Bool // the verdict
	events atomic.Int64
	done   chan struct{}
}

func startFloor(dir string, allow, readAgain bool) (*floor, error) {
	f, err := newFloor(readAgain)
	if err != nil {
		return nil, err
	}
	f.allow.Store(allow)
	if err := f.l.MarkExec(dir); err != nil {
		f.stop()
		return nil, err
	}
	return f, nil
}

// newFloor starts a floor listener that watches nothing yet.
func newFloor(readAgain bool) (*floor, error) {
	l, err := fanotify.New()
	if err != nil {
		return nil, err
	}
	f := &floor{l: l, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		runtime.LockOSThread()
		buf := make([]byte, 64<<10)
		var evs []fanotify.Event
		more := false
		for {
			var err error
			if more && readAgain {
				evs, err = l.ReadNow(buf, evs[:0])
			} else {
				evs, err = l.Read(buf, evs[:0])
			}
			for _, ev := range evs {
				if f.allow.Load() {
					_ = l.Allow(ev)
				} else {
					_ = l.Deny(ev)
				}
				ev.Close()
			}
			f.events.Add(int64(len(evs)))
			if err != nil {
				return
			}
			more = len(evs) > 0
		}
	}()
	return f, nil
}

// keptFloor is one floor listener for the whole bench, marked on a side's
// directory for its round and unmarked after, as the agent is: its thread
// lives across rounds as the agent's does (a floor per round starts a new
// thread each time, which the scheduler places afresh).
func keptFloor() func(dir string, allow bool) (func() int64, error) {
	var f *floor
	return func(dir string, allow bool) (func() int64, error) {
		if f == nil {
			var err error
			if f, err = newFloor(true); err != nil {
				return nil, err
			}
		}
		f.allow.Store(allow)
		before := f.events.Load()
		if err := f.l.MarkExec(dir); err != nil {
			return nil, err
		}
		return func() int64 {
			if err := f.l.UnmarkExec(dir); err != nil {
				fmt.Fprintln(os.Stderr, "bench/agent: unmarking:", err)
			}
			return f.events.Load() - before
		}, nil
	}
}

func (f *floor) stop() {
	f.l.Close()
	<-f.done
}
