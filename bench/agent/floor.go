package main

import (
	"runtime"
	"sync/atomic"

	"github.com/bulwark-sec/bulwark/internal/fanotify"
)

// floor is the least a fanotify exec listener can do: read, answer a fixed
// verdict, close; no identity, no lookup. What it costs is the kernel's
// round trip (and the wake-ups) on this machine; what the agent costs on
// top of it is the agent's.
type floor struct {
	l      *fanotify.Listener
	events atomic.Int64
	done   chan struct{}
}

func startFloor(dir string, allow, readAgain bool) (*floor, error) {
	l, err := fanotify.New()
	if err != nil {
		return nil, err
	}
	if err := l.MarkExec(dir); err != nil {
		l.Close()
		return nil, err
	}
	f := &floor{l: l, done: make(chan struct{})}
	answer := l.Deny
	if allow {
		answer = l.Allow
	}
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
				_ = answer(ev)
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

func (f *floor) stop() {
	f.l.Close()
	<-f.done
}
