package execmon

import (
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// BenchmarkExec: a fork and exec of /bin/true (wall ns/op), with no sensor,
// with the sensor from a cgroup no container is, and from a watched cgroup
// with kill whose file is held (the kill check's lookups, no kill); with
// the gate on, a host process (the pid namespace check), a watched
// cgroup's (the gate not asked), and a process in a pid namespace of its
// own in an ignored cgroup (every check of the gate, no stop), against
// the same without the gate; and the exec program's own run time (ns/prog,
// the kernel's BPF run-time stats, averaged over every exec of the machine
// meanwhile).
//
//	nice -n 10 go test ./internal/execmon -run '^$' -bench Exec -benchtime 2000x
func BenchmarkExec(b *testing.B) {
	run := func(b *testing.B, cgroup string) {
		for b.Loop() {
			if cgroup == "" {
				if err := exec.Command("/bin/true").Run(); err != nil {
					b.Fatal(err)
				}
				continue
			}
			if _, err := runIn(cgroup, "/bin/true", ""); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("no-sensor", func(b *testing.B) { run(b, "") })
	m := startSensor(b)
	drainContinuing(m)
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		b.Skipf("no BPF run-time stats: %v", err)
	}
	defer stats.Close()
	perProg := func(b *testing.B, f func()) {
		s0, err := m.objs.BulwarkExec.Stats()
		if err != nil {
			b.Fatal(err)
		}
		e0, err := m.objs.BulwarkExecve.Stats()
		if err != nil {
			b.Fatal(err)
		}
		f()
		s1, err := m.objs.BulwarkExec.Stats()
		if err != nil {
			b.Fatal(err)
		}
		e1, err := m.objs.BulwarkExecve.Stats()
		if err != nil {
			b.Fatal(err)
		}
		if n := s1.RunCount - s0.RunCount; n > 0 {
			b.ReportMetric(float64(s1.Runtime-s0.Runtime)/float64(n), "ns/prog")
			b.ReportMetric(float64(e1.Runtime-e0.Runtime)/float64(n), "ns/execve-prog") // the epoch's record (kill.go)
		}
	}
	b.Run("sensor-host", func(b *testing.B) { perProg(b, func() { run(b, "") }) })
	dir, cg := testCgroup(b, "")
	var st unix.Stat_t
	if err := unix.Stat("/bin/true", &st); err != nil {
		b.Fatal(err)
	}
	if err := m.Hold(cg, []uint64{st.Dev}, nil); err != nil {
		b.Fatal(err)
	}
	if err := m.Watch(cg, true); err != nil {
		b.Fatal(err)
	}
	b.Run("sensor-watched-held", func(b *testing.B) { perProg(b, func() { run(b, dir) }) })
	b.Run("sensor-unwatched-cgroup", func(b *testing.B) {
		_ = m.Unwatch(cg)
		perProg(b, func() { run(b, dir) })
	})
	inPidNS := func(b *testing.B) {
		f, err := os.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		for b.Loop() {
			cmd := exec.Command("/bin/true")
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, UseCgroupFD: true, CgroupFD: int(f.Fd())}
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("sensor-pidns", func(b *testing.B) { perProg(b, func() { inPidNS(b) }) })
	defer m.Gate(false, 0)
	if err := m.GateUnder(cg); err != nil { // the node's other processes are left alone
		b.Fatal(err)
	}
	if err := m.Gate(true, 0); err != nil {
		b.Fatal(err)
	}
	if err := m.Ignore(cg); err != nil {
		b.Fatal(err)
	}
	b.Run("gate-host", func(b *testing.B) { perProg(b, func() { run(b, "") }) })
	b.Run("gate-pidns-ignored", func(b *testing.B) { perProg(b, func() { inPidNS(b) }) })
	if err := m.Hold(cg, []uint64{st.Dev}, nil); err != nil { // Unwatch forgot it
		b.Fatal(err)
	}
	if err := m.Watch(cg, true); err != nil {
		b.Fatal(err)
	}
	b.Run("gate-watched-held", func(b *testing.B) { perProg(b, func() { run(b, dir) }) })
}

// drainContinuing reads the sensor's events and drops them, continuing
// every exec the gate stopped (the node's other containers): a benchmark
// with the gate on stops no one for good.
func drainContinuing(m *Monitor) {
	go func() {
		for {
			e, err := m.Read()
			if err != nil {
				return
			}
			if e.Stopped {
				m.Continue(e.PID)
			}
		}
	}()
}
