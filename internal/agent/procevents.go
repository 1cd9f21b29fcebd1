package agent

import (
	"context"
	"errors"
	"log/slog"

	"github.com/bulwark-sec/bulwark/internal/execmon"
)

// serveProcessEvents runs the exec sensor (--exec-events): every exec and
// exit of a watched container's processes, attributed by cgroup v2 id, is
// counted and logged at debug level with pid, parent, uid, path and argv.
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
		if ev.Kind == execmon.KindExit {
			a.stats.procExits.Add(1)
		} else {
			a.stats.procExecs.Add(1)
		}
		if a.log.Enabled(ctx, slog.LevelDebug) {
			a.log.Debug("process", "kind", ev.Kind.String(), "container", c.id, "namespace", c.namespace, "image", c.image,
				"pid", ev.PID, "ppid", ev.PPID, "uid", ev.UID, "path", ev.Path, "argv", ev.Argv, "argvTruncated", ev.Truncated,
				"exitStatus", ev.ExitCode)
		}
	}
}
