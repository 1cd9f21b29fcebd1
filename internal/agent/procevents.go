package agent

import (
	"context"
	"errors"
	"log/slog"

	"github.com/bulwark-sec/bulwark/internal/execmon"
)

// serveProcessEvents runs the exec sensor (--exec-events): every exec,
// exit and outbound TCP connection of a watched container's processes,
// attributed by cgroup v2 id, is counted and logged at debug level with
// pid, parent, uid, path and argv, exit status or destination.
// A kernel without the sensor is logged, not fatal: enforcement does not
// depend on it.
func (a *Agent) serveProcessEvents(ctx context.Context) error {
	m, err := execmon.Start()
	if err != nil {
		a.log.Warn("exec sensor unavailable: exec and exit events are not reported", "error", err.Error())
		return nil
	}
	a.procMon.Store(m)
	go func() {
		<-ctx.Done()
		m.Close()
	}()
	for {
		ev, err := m.Read()
		if errors.Is(err, execmon.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
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
		default:
			a.stats.procExecs.Add(1)
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
