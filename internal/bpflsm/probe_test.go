package bpflsm

import (
	"encoding/binary"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestProbeOnThisHost: the probe answers clearly either way. On the
// sandbox kernel this project is developed on, loading an LSM program is
// refused with EPERM: the error must say so, at stage load.
func TestProbeOnThisHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading BPF programs needs root")
	}
	err := Probe()
	if err == nil {
		t.Log("BPF-LSM loads and attaches on this kernel")
		return
	}
	var ue *UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("Probe: %v (%T), want an *UnavailableError", err, err)
	}
	t.Logf("Probe: %v", err)
	if ue.Stage == "load" && errors.Is(err, unix.EPERM) && !strings.Contains(err.Error(), "refuses LSM programs") {
		t.Fatalf("an EPERM at load is not explained: %v", err)
	}
	if ue.Stage == "not-active" && !strings.Contains(err.Error(), "lsm=") {
		t.Fatalf("bpf not active is not explained: %v", err)
	}
}

func TestActiveLSMsOnThisHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting securityfs needs root")
	}
	lsms, err := ActiveLSMs()
	if err != nil {
		t.Fatalf("ActiveLSMs: %v", err)
	}
	if len(lsms) == 0 || lsms[0] == "" {
		t.Fatalf("ActiveLSMs: %q", lsms)
	}
}

func TestParseLSMList(t *testing.T) {
	for in, want := range map[string][]string{
		"lockdown,capability,landlock,bpf\n": {"lockdown", "capability", "landlock", "bpf"},
		"capability,,bpf,":                   {"capability", "bpf"},
		"":                                   nil,
		"\n":                                 nil,
	} {
		if got := parseLSMList(in); !reflect.DeepEqual(got, want) {
			t.Errorf("parseLSMList(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFileIDDeviceEncoding: the device is in the kernel's MKDEV layout
// (major<<20|minor), which is what super_block.s_dev holds, not the
// user-space st_dev layout.
func TestFileIDDeviceEncoding(t *testing.T) {
	st := unix.Stat_t{Dev: unix.Mkdev(259, 0x1234), Ino: 42}
	st.Ctim.Sec, st.Ctim.Nsec = 1700000000, 123456789
	got := fileIDFromStat(&st)
	want := FileID{Dev: 259<<20 | 0x1234, Ino: 42, CtimeSec: 1700000000, CtimeNsec: 123456789}
	if got != want {
		t.Fatalf("fileIDFromStat = %+v, want %+v", got, want)
	}
	if _, err := FileIDOf("/nonexistent/bulwark"); err == nil || !strings.Contains(err.Error(), "/nonexistent/bulwark") {
		t.Fatalf("FileIDOf of a missing file: %v", err)
	}
}

func TestDecodeEvent(t *testing.T) {
	le := lsmEvent{Cgroup: 7, Ino: 13, Dev: 2, CtimeSec: 5, CtimeNsec: 6, Pid: 97, Tgid: 96, Uid: 0, Verdict: 2, Reason: 1, Hook: 2}
	copy(le.Comm[:], []int8{'s', 'h'})
	for i, c := range "/tmp/x" {
		le.Path[i] = int8(c)
	}
	buf := make([]byte, binary.Size(le))
	if _, err := binary.Encode(buf, binary.NativeEndian, &le); err != nil {
		t.Fatal(err)
	}
	ev, err := decodeEvent(buf)
	if err != nil {
		t.Fatalf("decodeEvent: %v", err)
	}
	want := Event{Cgroup: 7, File: FileID{Dev: 2, Ino: 13, CtimeSec: 5, CtimeNsec: 6}, PID: 97, TGID: 96,
		Verdict: VerdictRefused, Reason: ReasonNotListed, Hook: HookMmap, Comm: "sh", Path: "/tmp/x"}
	if ev != want {
		t.Fatalf("decodeEvent = %+v, want %+v", ev, want)
	}
	if ev.Verdict.String() != "refused" || ev.Reason.String() != "not-listed" || ev.Hook.String() != "mmap" || Verdict(9).String() != "verdict(9)" {
		t.Fatalf("names: %s %s %s %s", ev.Verdict, ev.Reason, ev.Hook, Verdict(9))
	}
	// A short or empty sample (a hostile or truncated ring buffer record)
	// is an error, not a panic.
	for _, n := range []int{0, 1, len(buf) - 1} {
		if _, err := decodeEvent(buf[:n]); err == nil {
			t.Fatalf("decodeEvent of %d bytes: no error", n)
		}
	}
	// A path with no terminating NUL is cut at the buffer's end.
	for i := range le.Path {
		le.Path[i] = 'a'
	}
	if _, err := binary.Encode(buf, binary.NativeEndian, &le); err != nil {
		t.Fatal(err)
	}
	if ev, err := decodeEvent(buf); err != nil || len(ev.Path) != len(le.Path) {
		t.Fatalf("decodeEvent of an unterminated path: %d bytes, %v", len(ev.Path), err)
	}
}

func TestWatchRejectsUnknownMode(t *testing.T) {
	var e Enforcer // no maps needed: the mode is checked first
	if err := e.Watch(1, Mode(0), false); err == nil {
		t.Fatal("Watch with mode 0: no error")
	}
}
