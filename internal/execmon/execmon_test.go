package execmon

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExecAndExit: on this kernel (LSM programs refused, tp_btf loads) the
// sensor sees a child's exec with its path, arguments, parent, cgroup and
// file identity, a long argument vector cut at its bound and said so, and
// the child's exit with its status, and an outbound TCP connection with
// its destination.
func TestExecAndExit(t *testing.T) {
	m := startSensor(t)
	evs := readAll(m)
	long := strings.Repeat("x", 400)
	short := exec.Command("/bin/sh", "-c", "exit 7", "argzero")
	if err := short.Run(); err == nil || short.ProcessState.ExitCode() != 7 {
		t.Fatalf("running sh: %v", err)
	}
	longCmd := exec.Command("/bin/true", "a", long)
	if err := longCmd.Run(); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/bin/true", &st); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"short exec": false, "short exit": false, "long exec": false}
	deadline := time.After(20 * time.Second)
	for !want["short exec"] || !want["short exit"] || !want["long exec"] {
		select {
		case e, ok := <-evs:
			if !ok {
				t.Fatal("the sensor stopped")
			}
			switch {
			case e.PID == uint32(short.Process.Pid) && e.Kind == KindExec:
				if e.Path != "/bin/sh" || strings.Join(e.Argv, " ") != "/bin/sh -c exit 7 argzero" || e.Truncated ||
					e.PPID != uint32(os.Getpid()) || e.Cgroup == 0 || e.Ino == 0 {
					t.Fatalf("sh exec event %+v", e)
				}
				want["short exec"] = true
			case e.PID == uint32(short.Process.Pid) && e.Kind == KindExit:
				if e.ExitCode>>8 != 7 {
					t.Fatalf("sh exit event %+v, want status 7", e)
				}
				want["short exit"] = true
			case e.PID == uint32(longCmd.Process.Pid) && e.Kind == KindExec:
				if !e.Truncated || len(e.Argv) != 3 || e.Argv[1] != "a" || len(strings.Join(e.Argv, "\x00")) != 255 || e.Ino != st.Ino {
					t.Fatalf("long exec event: %d args, truncated %v, ino %d (want %d)", len(e.Argv), e.Truncated, e.Ino, st.Ino)
				}
				want["long exec"] = true
			}
		case <-deadline:
			t.Fatalf("after 20 s: %v", want)
		}
	}
	// Outbound TCP connections from this process, IPv4 and (where the
	// loopback has it) IPv6.
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Logf("no listener on %s: %v", addr, err)
			continue
		}
		defer ln.Close()
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		connectEvent(t, evs, deadline, netip.MustParseAddrPort(ln.Addr().String()))
	}
	s, err := m.Stats()
	if err != nil || s.Events == 0 {
		t.Fatalf("stats %+v, %v", s, err)
	}
	t.Logf("events %d, lost %d (the whole machine's execs and exits meanwhile)", s.Events, s.Lost)
}

// connectEvent waits for this process's connect event to want.
func connectEvent(t *testing.T, evs <-chan Event, deadline <-chan time.Time, want netip.AddrPort) {
	t.Helper()
	for {
		select {
		case e, ok := <-evs:
			if !ok {
				t.Fatal("the sensor stopped")
			}
			if e.Kind == KindConnect && e.PID == uint32(os.Getpid()) && e.Dst.Port() == want.Port() {
				if e.Dst != want || e.Cgroup == 0 {
					t.Fatalf("connect event %+v, want to %s", e, want)
				}
				return
			}
		case <-deadline:
			t.Fatalf("no connect event to %s", want)
		}
	}
}

func TestSplitArgv(t *testing.T) {
	for _, c := range []struct {
		in        string
		full      bool
		want      string
		truncated bool
	}{
		{"a\x00b\x00", false, "a|b", false},
		{"a\x00bc", true, "a|bc", true},
		{"a\x00b\x00", true, "a|b", false},
		{"", false, "", false},
	} {
		got, tr := splitArgv([]byte(c.in), c.full)
		if strings.Join(got, "|") != c.want || tr != c.truncated {
			t.Errorf("splitArgv(%q, %v) = %q, %v", c.in, c.full, got, tr)
		}
	}
}
