package execmon

import (
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// BenchmarkWakeGuard: what the guard's sched_waking program costs every
// wakeup of the node: a ping-pong of two threads over blocking pipes (two
// wakeups a round trip, wall ns/op) without the sensor and with it (the
// guard attached), and the program's own run time (ns/prog, the kernel's
// BPF run-time stats, over every wakeup of the machine meanwhile).
//
//	nice -n 10 go test ./internal/execmon -run '^$' -bench WakeGuard -benchtime 200000x
func BenchmarkWakeGuard(b *testing.B) {
	pingPong := func(b *testing.B) {
		var ab, ba [2]int
		if err := unix.Pipe2(ab[:], 0); err != nil {
			b.Fatal(err)
		}
		if err := unix.Pipe2(ba[:], 0); err != nil {
			b.Fatal(err)
		}
		defer func() {
			for _, fd := range []int{ab[0], ab[1], ba[0], ba[1]} {
				unix.Close(fd)
			}
		}()
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			defer close(done)
			buf := make([]byte, 1)
			for {
				if n, err := unix.Read(ab[0], buf); n != 1 || err != nil {
					return
				}
				unix.Write(ba[1], buf)
			}
		}()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		buf := []byte{1}
		for b.Loop() {
			unix.Write(ab[1], buf)
			unix.Read(ba[0], buf)
		}
		unix.Close(ab[1])
		<-done
	}
	b.Run("no-sensor", pingPong)
	m := startSensor(b)
	if err := m.Guarded(); err != nil {
		b.Skipf("no guard: %v", err)
	}
	drainContinuing(m)
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		b.Skipf("no BPF run-time stats: %v", err)
	}
	defer stats.Close()
	b.Run("guard", func(b *testing.B) {
		s0, err := m.guard.objs.BulwarkGateWake.Stats()
		if err != nil {
			b.Fatal(err)
		}
		pingPong(b)
		s1, err := m.guard.objs.BulwarkGateWake.Stats()
		if err != nil {
			b.Fatal(err)
		}
		if n := s1.RunCount - s0.RunCount; n > 0 {
			b.ReportMetric(float64(s1.Runtime-s0.Runtime)/float64(n), "ns/prog")
			b.ReportMetric(float64(n)/float64(b.N), "runs/op")
		}
	})
}
