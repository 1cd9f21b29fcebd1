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
// another cgroup is untouched; then exec latency with and without.
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
	cmd := exec.CommandContext(ctx, qemu, "-kernel", kernel, "-initrd", initrd,
		"-nographic", "-no-reboot", "-m", "1024",
		"-append", "console=ttyS0 quiet lsm=lockdown,capability,landlock,bpf panic=-1 bulwark_execs="+execs)
	out, err := cmd.CombinedOutput()
	t.Logf("guest ran in %s", time.Since(start).Round(100*time.Millisecond))
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
		"BULWARK latency", "BULWARK PASS", "BULWARK exit=0",
	} {
		if !has(want) {
			t.Fatalf("guest output lacks %q\n%s", want, tail(out, 4000))
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
