// Command identity measures Bulwark's workload identity on this machine:
//
//	(a) certification -> first X.509-SVID on a running workload's stream,
//	(b) revocation or drift -> the identity leaves the stream,
//	(c) X.509-SVIDs signed per second (the authority alone, and through
//	    the server's route with CSR checks, the rule's store reads and the
//	    audit entry),
//	(d) the memory of the agent's identity part (Manager and Workload API)
//	    holding 100 workloads' SVIDs with 100 clients watching.
//
// Everything is real: a SQLite store in a temporary directory, the API
// handler over loopback HTTP, the agent's Manager and Workload API on a
// unix socket, go-spiffe clients. For (d) the agent side and the 100
// clients are separate processes (this program run again).
//
//	go run ./bench/identity [-rounds 20] [-sign 5s] [-workloads 100]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime/pprof"
	"slices"
	"time"
)

func main() {
	role := flag.String("role", "bench", "bench, or (run by the bench) agent, client or server")
	rounds := flag.Int("rounds", 20, "rounds of (a) and (b)")
	signFor := flag.Duration("sign", 5*time.Second, "how long each signing measure runs")
	workloads := flag.Int("workloads", 100, "workloads of (d)")
	server := flag.String("server", "", "(agent) server URL")
	token := flag.String("token", "", "(agent) operator token")
	socket := flag.String("socket", "", "(agent, client) Workload API socket")
	pids := flag.String("pids", "", "(agent) file of client pids, one a line")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the bench to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()
	var err error
	switch *role {
	case "agent":
		err = runAgent(ctx, *server, *token, *socket, *pids, *workloads)
	case "client":
		err = runClient(ctx, *socket)
	case "server":
		err = runServer(ctx)
	case "bench":
		err = bench(ctx, *rounds, *signFor, *workloads)
	default:
		err = fmt.Errorf("unknown -role %q", *role)
	}
	if err != nil {
		pprof.StopCPUProfile()
		log.Fatal(err)
	}
}

func bench(ctx context.Context, rounds int, signFor time.Duration, workloads int) error {
	dir, err := os.MkdirTemp("", "bwidb")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	r, err := newRig(ctx, dir)
	if err != nil {
		return err
	}
	defer r.close()
	fmt.Println("(c) X.509-SVIDs signed per second")
	if err := r.signing(ctx, signFor); err != nil {
		return err
	}
	fmt.Printf("(a), (b) over %d rounds (go-spiffe client retrying every %v after PermissionDenied)\n", rounds, clientRetry)
	if err := r.latencies(ctx, dir, rounds); err != nil {
		return err
	}
	fmt.Printf("(d) agent identity memory with %d workloads\n", workloads)
	return r.memory(ctx, dir, workloads)
}

// summary is p50, p99 and max of ds.
func summary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", d.Seconds()*1000) }
	return fmt.Sprintf("p50 %s, p99 %s, max %s (n=%d)", ms(q(0.5)), ms(q(0.99)), ms(s[len(s)-1]), len(s))
}
