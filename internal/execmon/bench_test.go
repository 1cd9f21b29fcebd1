package execmon

import (
	"os/exec"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// BenchmarkExec: a fork and exec of /bin/true (wall ns/op), with no sensor,
// with the sensor from a cgroup no container is, and from a watched cgroup
// with kill whose file is held (the kill check's lookups, no kill); and the
// exec program's own run time (ns/prog, the kernel's BPF run-time stats,
// averaged over every exec of the machine meanwhile).
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
	_ = readAll(m) // drain
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
}
