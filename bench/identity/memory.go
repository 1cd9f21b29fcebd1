package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/store"
	bwapi "github.com/bulwark-sec/bulwark/internal/workloadapi"
)

// memory measures (d): the agent side (Manager and Workload API, in a
// process of its own) before and after n workloads got their SVIDs, with
// n client processes watching their streams.
func (r *rig) memory(ctx context.Context, dir string, n int) error {
	if err := r.setCertification(ctx, digest(1), store.Certified); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	sock, pids := filepath.Join(dir, "m.sock"), filepath.Join(dir, "pids")
	agent := exec.Command(exe, "-role", "agent", "-server", r.srv.URL, "-token", r.op, "-socket", sock, "-pids", pids, "-workloads", strconv.Itoa(n))
	agent.Stderr = os.Stderr
	stdin, _ := agent.StdinPipe()
	out, _ := agent.StdoutPipe()
	if err := agent.Start(); err != nil {
		return err
	}
	defer func() { stdin.Close(); agent.Process.Kill(); agent.Wait() }()
	var mu sync.Mutex
	heap := ""
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			mu.Lock()
			heap = sc.Text()
			mu.Unlock()
		}
	}()
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i > 500 {
			return errors.New("the agent process did not serve its socket")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	rss0 := rss(agent.Process.Pid)
	mu.Lock()
	heap0 := heap
	mu.Unlock()

	ready := make(chan struct{}, n)
	var clients []*exec.Cmd
	var pidList strings.Builder
	for range n {
		c := exec.Command(exe, "-role", "client", "-socket", sock)
		cin, _ := c.StdinPipe()
		cout, _ := c.StdoutPipe()
		if err := c.Start(); err != nil {
			return err
		}
		defer func() { cin.Close(); c.Process.Kill(); c.Wait() }()
		go func() {
			if l, _ := bufio.NewReader(cout).ReadString('\n'); strings.HasPrefix(l, "svid") {
				ready <- struct{}{}
			}
		}()
		clients = append(clients, c)
		fmt.Fprintln(&pidList, c.Process.Pid)
	}
	t0 := time.Now()
	if err := os.WriteFile(pids+".tmp", []byte(pidList.String()), 0o600); err != nil {
		return err
	}
	os.Rename(pids+".tmp", pids)
	timeout := time.After(2 * time.Minute)
	for i := range n {
		select {
		case <-ready:
		case <-timeout:
			return fmt.Errorf("%d of %d clients got their SVID in 2 min", i, n)
		}
	}
	took := time.Since(t0)
	time.Sleep(time.Second)
	rss1 := rss(agent.Process.Pid)
	mu.Lock()
	heap1 := heap
	mu.Unlock()
	fmt.Printf("  %d client processes had their SVIDs %.2f s after the agent learned of them\n", n, took.Seconds())
	fmt.Printf("  agent process RSS: %.1f MiB idle -> %.1f MiB with %d workloads (%.1f KiB each)\n",
		float64(rss0)/1024, float64(rss1)/1024, n, float64(rss1-rss0)/float64(n))
	fmt.Printf("  agent Go heap (in use, goroutines): idle %s -> %s\n", heap0, heap1)
	return nil
}

// rss is a process's resident set in KiB.
func rss(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// runAgent is the agent's identity side for (d): n workloads, callers
// attributed by the pid file's order.
func runAgent(ctx context.Context, server, token, sock, pidFile string, n int) error {
	var mu sync.Mutex
	byPID := map[int]int{}
	load := func() map[int]int {
		mu.Lock()
		defer mu.Unlock()
		if len(byPID) == 0 {
			b, _ := os.ReadFile(pidFile)
			for i, f := range strings.Fields(string(b)) {
				p, _ := strconv.Atoi(f)
				byPID[p] = i
			}
		}
		return byPID
	}
	wl := func(i int) identity.Workload {
		return identity.Workload{Node: node, Container: fmt.Sprintf("w%d", i), Image: digest(1), Namespace: "bench"}
	}
	m := bwapi.NewManager(bwapi.ManagerConfig{
		Issuer: &bwapi.ServerIssuer{URL: server, Token: token, Node: node},
		Workloads: func() []identity.Workload {
			if len(load()) == 0 {
				return nil
			}
			out := make([]identity.Workload, n)
			for i := range out {
				out[i] = wl(i)
			}
			return out
		}})
	srv := bwapi.NewServer(m, func(pid int) (identity.Workload, bool) {
		i, ok := load()[pid]
		return wl(i), ok
	}, nil)
	ctx, cancel := context.WithCancel(ctx)
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }() // the bench went away
	go m.Run(ctx)
	go func() {
		for ctx.Err() == nil {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Printf("%.1f MiB, %d goroutines\n", float64(ms.HeapInuse)/(1<<20), runtime.NumGoroutine())
			time.Sleep(250 * time.Millisecond)
		}
	}()
	return srv.Serve(ctx, sock)
}

// runClient watches its X.509-SVID and says "svid" at the first.
func runClient(ctx context.Context, sock string) error {
	ctx, cancel := context.WithCancel(ctx)
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
	c, err := workloadapi.New(ctx, workloadapi.WithAddr("unix://"+sock), workloadapi.WithBackoffStrategy(fastRetry{}))
	if err != nil {
		return err
	}
	var once sync.Once
	err = c.WatchX509Context(ctx, firstUpdate(func() { once.Do(func() { fmt.Println("svid") }) }))
	if ctx.Err() != nil {
		return nil
	}
	return err
}

type firstUpdate func()

func (f firstUpdate) OnX509ContextUpdate(*workloadapi.X509Context) { f() }
func (f firstUpdate) OnX509ContextWatchError(error)                {}
