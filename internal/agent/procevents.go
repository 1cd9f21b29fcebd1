package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/execmon"
	"github.com/bulwark-sec/bulwark/internal/fanotify"
)

// serveProcessEvents runs the exec sensor (--exec-events): every exec,
// exit and outbound TCP connection of a watched container's processes,
// attributed by cgroup v2 id, is counted and logged at debug level with
// pid, parent, uid, path and argv, exit status or destination.
// A kernel without the sensor is logged, not fatal: enforcement does not
// depend on it (but prevent's kill of unheld execs does, unheldkill.go).
func (a *Agent) serveProcessEvents(ctx context.Context, m *execmon.Monitor) error {
	defer func() { a.unpinHeld(m); m.Close() }() // gaterecover.go
	go func() {
		<-ctx.Done()
		if a.gateClose(m) { // gate.go: off, and every process it stopped continued
			time.Sleep(gateDrain) // an exec stopped just before is in the ring buffer now
			if m.Flush() == nil {
				return // the loop reads what is left (continuing the stopped), then ends
			}
		}
		a.unpinHeld(m)
		m.Close()
	}()
	for {
		ev, err := m.Read()
		if errors.Is(err, execmon.ErrClosed) || errors.Is(err, execmon.ErrFlushed) {
			return nil
		}
		if err != nil {
			return err
		}
		if ev.Stopped {
			a.gateStopped(m, ev) // gate.go
			continue
		}
		c := a.watchedCgroup(ev.Cgroup) // lsm.go
		if c == nil {
			continue // not a watched container's process
		}
		switch ev.Kind {
		case execmon.KindExit:
			a.stats.procExits.Add(1)
		case execmon.KindConnect:
			a.stats.procConnects.Add(1)
			if tr := a.flowTracker.Load(); tr != nil && ev.Dst.IsValid() {
				tr.Connected(c.id, c.image, ev.Dst, time.Now())
			}
		default:
			a.stats.procExecs.Add(1)
			a.unheldExec(c, ev) // unheld.go
			if a.fan == nil {   // the kernel decides (BPF-LSM): the sensor is the only witness (ran.go)
				c.ran.sensed(ev.Path)
			}
		}
		if !a.log.Enabled(ctx, slog.LevelDebug) {
			continue
		}
		attrs := []any{"kind", ev.Kind.String(), "container", c.id, "namespace", c.namespace, "image", c.image,
			"pid", ev.PID, "ppid", ev.PPID, "uid", ev.UID, "comm", ev.Comm}
		switch ev.Kind {
		case execmon.KindExec:
			attrs = append(attrs, "path", ev.Path, "argv", ev.Argv, "argvTruncated", ev.Truncated)
		case execmon.KindExit:
			attrs = append(attrs, "exitStatus", ev.ExitCode)
		case execmon.KindConnect:
			attrs = append(attrs, "dst", ev.Dst.String())
		}
		a.log.Debug("process", attrs...)
	}
}

// serveWrites reports executables written in watched containers (with
// --exec-events): a close of a file opened for writing whose mode has an
// execute bit, on a watched container's filesystem, is counted and logged
// at warn level with the path and the writer. It is after the fact (the
// exec of such a file is what the mechanism decides); it tells the
// operator a container is being changed.
func (a *Agent) serveWrites(ctx context.Context) error {
	l := a.writes
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	buf := make([]byte, 64<<10)
	var evs []fanotify.Event
	for {
		var err error
		evs, err = l.Read(buf, evs[:0])
		for _, ev := range evs {
			a.written(ev)
			ev.Close()
		}
		if errors.Is(err, fanotify.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (a *Agent) written(ev fanotify.Event) {
	var st unix.Stat_t
	if err := unix.Fstat(ev.Fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o111 == 0 {
		return
	}
	a.mu.RLock()
	c := a.byDev[st.Dev]
	a.mu.RUnlock()
	if c == nil || c.canary {
		return
	}
	a.stats.execWrites.Add(1)
	path, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(ev.Fd))
	a.log.Warn("executable written", "container", c.id, "namespace", c.namespace, "image", c.image, "pid", ev.PID,
		"path", path, "mode", fmt.Sprintf("%04o", st.Mode&0o7777))
}
