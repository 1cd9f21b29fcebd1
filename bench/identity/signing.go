package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// signing measures (c): the authority signing alone on every core, then
// agents asking through the route (16 at once, CSRs made beforehand as
// agents make them while renewing).
func (r *rig) signing(ctx context.Context, d time.Duration) error {
	key, err := identity.NewKey()
	if err != nil {
		return err
	}
	id := spiffeid.RequireFromPath(td, "/ns/bench/container/x")
	cpu0 := cpuTime()
	n := parallel(2*runtime.GOMAXPROCS(0), d, func() error {
		_, err := r.authority.SignX509(id, key.Public(), 0)
		return err
	})
	perSVID := (cpuTime() - cpu0) / time.Duration(n)
	fmt.Printf("  authority.SignX509:         %6.0f SVIDs/s wall; %4.0f us CPU each -> %6.0f/s on 2 idle cores\n",
		float64(n)/d.Seconds(), perSVID.Seconds()*1e6, 2/perSVID.Seconds())

	if err := r.setCertification(ctx, digest(1), store.Certified); err != nil {
		return err
	}
	csrs := make([][]byte, 64)
	for i := range csrs {
		k, _ := identity.NewKey()
		if csrs[i], err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k); err != nil {
			return err
		}
	}
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var i atomic.Int64
	var lat []time.Duration
	var mu sync.Mutex
	cpu0 = cpuTime()
	n = parallel(16, d, func() error {
		k := int(i.Add(1))
		t0 := time.Now()
		err := r.issue(ctx, c, fmt.Sprintf("c%d", k%1000), digest(1), csrs[k%len(csrs)])
		mu.Lock()
		lat = append(lat, time.Since(t0))
		mu.Unlock()
		return err
	})
	perSVID = (cpuTime() - cpu0) / time.Duration(n)
	fmt.Printf("  POST /api/v1/identity/x509: %6.0f SVIDs/s wall; %4.0f us CPU each (server and bench client) -> %6.0f/s on 2 idle cores\n",
		float64(n)/d.Seconds(), perSVID.Seconds()*1e6, 2/perSVID.Seconds())
	fmt.Printf("    each audited; latency %s; load average %s\n", summary(lat), loadAvg())
	return serverOnly(ctx, d, csrs)
}

// serverOnly is the route again with the server in a process of its own,
// so that its CPU per SVID is read apart from the clients'.
func serverOnly(ctx context.Context, d time.Duration, csrs [][]byte) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, "-role", "server")
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() }()
	var url, token string
	if _, err := fmt.Fscan(out, &url, &token); err != nil {
		return fmt.Errorf("reading the server process's address: %w", err)
	}
	r := &rig{srv: &httptest.Server{URL: url}, op: token}
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var i atomic.Int64
	cpu0 := procCPU(cmd.Process.Pid)
	n := parallel(16, d, func() error {
		k := int(i.Add(1))
		return r.issue(ctx, c, fmt.Sprintf("c%d", k%1000), digest(1), csrs[k%len(csrs)])
	})
	per := (procCPU(cmd.Process.Pid) - cpu0) / time.Duration(max(n, 1))
	fmt.Printf("  the same, server process alone: %4.0f us of server CPU each -> %6.0f/s on 2 idle cores\n", per.Seconds()*1e6, 2/per.Seconds())
	return nil
}

// runServer is the rig in a process of its own: it prints its URL and an
// operator token and serves until its stdin closes.
func runServer(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "bwids")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	r, err := newRig(ctx, dir)
	if err != nil {
		return err
	}
	defer r.close()
	if err := r.setCertification(ctx, digest(1), store.Certified); err != nil {
		return err
	}
	fmt.Println(r.srv.URL, r.op)
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// procCPU is a process's user and system CPU time (from /proc, in clock
// ticks of 10 ms).
func procCPU(pid int) time.Duration {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// cpuTime is the CPU this process used (user and system): on a machine
// other jobs share, the cost per SVID is what holds.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// parallel runs fn on g goroutines for d and returns how many calls
// succeeded; the first error stops the count.
func parallel(g int, d time.Duration, fn func() error) int64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if err := fn(); err != nil {
					fmt.Println("  error:", err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return n.Load()
}
