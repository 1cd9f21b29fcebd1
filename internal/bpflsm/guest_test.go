package bpflsm

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// guestInit is the guest's /init: mount what the agent needs, run the test
// program, power off (the kernel's panic=-1 and qemu's -no-reboot end the
// run if anything goes wrong instead).
const guestInit = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t securityfs securityfs /sys/kernel/security
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox mount -t tracefs tracefs /sys/kernel/tracing
/bin/busybox mount -t cgroup2 cgroup2 /sys/fs/cgroup
/guest
echo "BULWARK exit=$?"
/bin/busybox poweroff -f
`

// skipOrFail skips the guest test when its tools are missing, or fails it
// when BULWARK_REQUIRE_QEMU=1 (as .ci/run sets).
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("BULWARK_REQUIRE_QEMU") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// guestKernel returns the newest Debian kernel image under /boot.
func guestKernel(t *testing.T) string {
	t.Helper()
	ks, _ := filepath.Glob("/boot/vmlinuz-*")
	sort.Strings(ks)
	if len(ks) == 0 {
		skipOrFail(t, "no /boot/vmlinuz-* (apt-get install linux-image-amd64)")
	}
	k := ks[len(ks)-1]
	f, err := os.Open(k)
	if err != nil {
		skipOrFail(t, "kernel %q unreadable: %v", k, err)
	}
	f.Close()
	return k
}

// TestGuestBPFLSM boots Debian's kernel in qemu with bpf among the LSMs
// and runs testdata/guest there: the probe passes, a listed file runs, an
// unlisted one is refused with EPERM over bulwark_execs (default 2,000)
// in-place execs with zero escapes and every refusal counted and reported,
// a memfd exec and a modified listed file are refused, the loader trick
// (ld.so FILE) runs with exec checks only and is refused with mmap checks
// while listed dynamic programs run, detect lets drift run and reports it,
// another cgroup is untouched; the agent's compile and canary on a plain
// root; on overlay roots (overlay.ko from the host's Debian kernel package,
// every layer on one filesystem as containerd lays them out, and the image
// layer on another) listed image files run and an unlisted image file, a
// new file in the writable layer, a copy made after the list and copied-up
// files are refused, with the identities the kernel reports being the ones
// compiled; the learning window (detect, learned through the container's
// root, relisted in prevent at lock); then exec latency with and without
// the programs (printed and logged, not judged).
func TestGuestBPFLSM(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the guest test boots an x86-64 kernel")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		skipOrFail(t, "qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
	}
	kernel := guestKernel(t)
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		skipOrFail(t, "busybox not found (apt-get install busybox-static)")
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatalf("reading %q: %v", busybox, err)
	}
	if bytes.Contains(bb, []byte("/lib64/ld-linux")) {
		skipOrFail(t, "%q is dynamically linked (apt-get install busybox-static)", busybox)
	}

	// The loader case needs an ELF interpreter, libc and a dynamic program.
	host := map[string]string{}
	for guest, hostPath := range map[string]string{
		"lib64/ld-linux-x86-64.so.2":     "/lib64/ld-linux-x86-64.so.2",
		"lib/x86_64-linux-gnu/libc.so.6": "/lib/x86_64-linux-gnu/libc.so.6",
		"bin/dyntrue":                    "/bin/true",
	} {
		b, err := os.ReadFile(hostPath)
		if err != nil {
			skipOrFail(t, "the loader case needs %q: %v", hostPath, err)
		}
		host[guest] = string(b)
	}

	dir := t.TempDir()
	guestBin := filepath.Join(dir, "guest")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", guestBin, "./testdata/guest")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the guest program: %v\n%s", err, out)
	}
	gb, err := os.ReadFile(guestBin)
	if err != nil {
		t.Fatal(err)
	}
	dirMode := uint32(0o040755)
	entries := map[string]initramfsEntry{
		"bin": {mode: dirMode}, "dev": {mode: dirMode}, "proc": {mode: dirMode},
		"sys": {mode: dirMode}, "tmp": {mode: 0o041777},
		"dev/console": {mode: 0o020600, rdevMajor: 5, rdevMinor: 1},
		"bin/busybox": {mode: 0o100755, data: bb},
		"bin/sh":      {mode: 0o120777, symlinkToDst: "busybox"},
		"init":        {mode: 0o100755, data: []byte(guestInit)},
		"guest":       {mode: 0o100755, data: gb},
		"lib":         {mode: dirMode}, "lib/x86_64-linux-gnu": {mode: dirMode}, "lib64": {mode: dirMode},
	}
	for name, data := range host {
		entries[name] = initramfsEntry{mode: 0o100755, data: []byte(data)}
	}
	// overlayfs, for the overlay case: Debian builds it as a module of
	// the kernel's own version.
	entries["lib/modules"] = initramfsEntry{mode: dirMode}
	if mod, err := os.ReadFile(overlayModule(kernel)); err == nil {
		entries["lib/modules/overlay.ko"] = initramfsEntry{mode: 0o100644, data: mod}
	} else if !overlayBuiltIn(kernel) {
		skipOrFail(t, "the overlay case needs overlayfs: %v (apt-get install linux-image-amd64)", err)
	}
	initrd := filepath.Join(dir, "initramfs.cpio.gz")
	f, err := os.Create(initrd)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeInitramfs(f, entries); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	rounds := "" // the guest's default (latency.go)
	if v := os.Getenv("BULWARK_BPFLSM_LATENCY_ROUNDS"); v != "" {
		if !regexp.MustCompile(`^[1-9][0-9]{0,3}$`).MatchString(v) {
			t.Fatalf("BULWARK_BPFLSM_LATENCY_ROUNDS %q: want a positive number", v)
		}
		rounds = " bulwark_latency_rounds=" + v
	}
	if os.Getenv("BULWARK_BPFLSM_LATENCY_ATTACHED") == "1" { // a third side: attached, not watched
		rounds += " bulwark_latency_attached=1"
	}
	execs := "2000"
	if v := os.Getenv("BULWARK_BPFLSM_EXECS"); v != "" {
		if !regexp.MustCompile(`^[1-9][0-9]{0,6}$`).MatchString(v) {
			t.Fatalf("BULWARK_BPFLSM_EXECS %q: want a positive number", v)
		}
		execs = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	start := time.Now()
	args := []string{"-kernel", kernel, "-initrd", initrd, "-nographic", "-no-reboot", "-m", "1024"}
	if os.Getenv("BULWARK_QEMU_KVM") == "1" { // hardware virtualisation where /dev/kvm exists (not on this machine)
		args = append(args, "-enable-kvm", "-cpu", "host")
	}
	cmd := exec.CommandContext(ctx, qemu, append(args,
		"-append", "console=ttyS0 quiet lsm=lockdown,capability,landlock,bpf panic=-1 bulwark_execs="+execs+rounds)...)
	loadBefore := hostLoad()
	out, err := cmd.CombinedOutput()
	t.Logf("guest ran in %s; host load average before %s, after %s (%d CPUs)",
		time.Since(start).Round(100*time.Millisecond), loadBefore, hostLoad(), runtime.NumCPU())
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		if i := strings.Index(l, "BULWARK "); i >= 0 {
			lines = append(lines, l[i:])
			t.Log(l[i:])
		}
	}
	if err != nil || ctx.Err() != nil {
		t.Fatalf("qemu: %v (context: %v)\n%s", err, ctx.Err(), tail(out, 4000))
	}
	has := func(prefix string) bool {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return true
			}
		}
		return false
	}
	if has("BULWARK ran escape") || has("BULWARK ran memfd") {
		t.Fatalf("a drifted exec escaped in prevent")
	}
	for _, want := range []string{
		"BULWARK probe ok", "BULWARK outside-cgroup ran",
		"BULWARK allowed ran", "BULWARK denied child EPERM", "BULWARK memfd EPERM",
		"BULWARK storm attempts=" + execs + " refused=" + execs + " escapes=0",
		"BULWARK modified EPERM", "BULWARK detect ran",
		"BULWARK loader exec-only ran", "BULWARK dynamic listed ran", "BULWARK loader refused",
		"BULWARK mmap and mprotect EPERM", "BULWARK loader events mprotect refused=",
		"BULWARK loader events mmap refused=", "BULWARK loader events mmap reported=", "BULWARK loader detect reported",
		"BULWARK agent compiled", "BULWARK agent listed ran", "BULWARK agent drifted EPERM", "BULWARK agent memfd EPERM",
		"BULWARK agent loader refused", "BULWARK agent modified EPERM", "BULWARK agent canary unwatched ran", "BULWARK agent canary refused",
		"BULWARK overlay module", "BULWARK ovl compiled", "BULWARK ovl listed /bin/busybox ran", "BULWARK ovl listed /bin/dyntrue ran",
		"BULWARK ovl new file in upper EPERM event=refused/not-listed", "BULWARK ovl copy-up modified EPERM event=refused/modified",
		"BULWARK ovl2 listed /bin/dyntrue ran", "BULWARK ovl2 copy-up modified EPERM",
		"BULWARK learn window ran and reported", "BULWARK learn locked: learned, listed and chmod-ed programs ran", "BULWARK learn locked: a new program EPERM",
		"BULWARK latency program=static", "BULWARK latency program=dynamic", "BULWARK PASS", "BULWARK exit=0",
	} {
		if !has(want) {
			t.Fatalf("guest output lacks %q\n%s", want, tail(out, 4000))
		}
	}
}

// overlayModule is where Debian keeps overlay.ko for kernel image k
// (/boot/vmlinuz-VERSION).
func overlayModule(k string) string {
	v := strings.TrimPrefix(filepath.Base(k), "vmlinuz-")
	return filepath.Join("/lib/modules", v, "kernel/fs/overlayfs/overlay.ko")
}

// overlayBuiltIn tells whether kernel image k has overlayfs built in.
func overlayBuiltIn(k string) bool {
	v := strings.TrimPrefix(filepath.Base(k), "vmlinuz-")
	b, err := os.ReadFile(filepath.Join("/boot", "config-"+v))
	return err == nil && bytes.Contains(b, []byte("\nCONFIG_OVERLAY_FS=y\n"))
}

// hostLoad is the host's load average over 1, 5 and 15 minutes: the
// guest's timings are emulated on this machine, shared with other work.
func hostLoad() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
