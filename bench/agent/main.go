// Command agent measures bulwark-agent's fanotify path (issue 12,
// acceptance 3): (a) exec events decided per second with no loss and the
// agent's CPU at fixed exec rates and flat out; (b) the added latency of an
// exec of a known file (cache hit) with the agent in prevent against no
// agent; (c) the agent's memory with 100 watched containers. (a) and (b)
// run the same on a floor listener (floor.go), the kernel's round trip,
// so the agent's own share shows.
//
// The agent runs in this process (the library, internal/agent, with real
// fanotify marks on tmpfs "containers" watched through Agent.WatchDir); the
// execs come from separate processes (this binary again, by role), so the
// agent's CPU is this process's rusage. Needs root. See run.sh.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/agent"
	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/canary"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

func main() {
	canary.MaybeHelper()
	switch os.Getenv("BENCH_ROLE") {
	case "storm":
		stormRole()
		return
	case "latency":
		latencyRole()
		return
	}
	rates := flag.String("rates", "1000,10000,0", "exec rates per second for (a); 0 is flat out")
	dur := flag.Duration("duration", 10*time.Second, "length of each (a) run")
	lat := flag.Int("latency-execs", 2000, "execs per side for (b)")
	containers := flag.Int("containers", 100, "containers for (c)")
	flag.StringVar(&files, "files", "known,script,true", "files for (b)")
	flag.IntVar(&stormRounds, "storm-rounds", 3, "rounds of (a) through every listener, in a random order each")
	flag.IntVar(&storms, "storms", 1, "processes generating the flat-out storm of (a), each serial")
	flag.IntVar(&latRounds, "latency-rounds", 20, "rounds of (b) through every side, in a random order each")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench/agent: needs root (fanotify, mounts)")
		os.Exit(2)
	}
	if p := os.Getenv("BENCH_CPUPROFILE"); p != "" {
		f, _ := os.Create(p)
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := run(*rates, *dur, *lat, *containers); err != nil {
		fmt.Fprintln(os.Stderr, "bench/agent:", err)
		os.Exit(1)
	}
}

var (
	stormRounds int
	latRounds   int
	storms      int
	files       string
)

func run(rates string, dur time.Duration, latN, nContainers int) error {
	load := func() string {
		b, _ := os.ReadFile("/proc/loadavg")
		return strings.Join(strings.Fields(string(b))[:3], " ")
	}
	fmt.Printf("bench/agent: %d CPUs, GOMAXPROCS %d, load %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), load())
	base, err := os.MkdirTemp("", "bench-agent-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	prog := canary.Program()
	known := append(append([]byte{}, prog...), "known"...)
	// A script whose interpreter is on the same filesystem: two exec
	// events per exec (the script, then the kernel's open of its
	// interpreter), as a dynamic program's loader is inside a container.
	// (/bin/true here has one: its loader is on the unwatched root.)
	script := []byte("#!" + filepath.Join(base, "c0", "known") + "\n")
	trueBin, err := os.ReadFile("/bin/true") // a real (dynamic) program
	if err != nil {
		return err
	}
	list, err := allowlist.FromInventory("sha256:"+strings.Repeat("b", 64), []sbom.File{
		{Path: "/known", Type: "file", Mode: "0755", Digest: digest(known)},
		{Path: "/true", Type: "file", Mode: "0755", Digest: digest(trueBin)},
		{Path: "/script", Type: "file", Mode: "0755", Digest: digest(script)}}, allowlist.Config{})
	if err != nil {
		return err
	}
	var reported atomic.Int64
	a, err := agent.New(agent.Config{Mode: agent.ModePrevent, Mechanism: agent.MechanismFanotify, Log: slog.New(slog.DiscardHandler),
		Report: func(agent.Event) { reported.Add(1) }})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.ServeExecs(ctx) }()

	dirs := make([]string, nContainers)
	for i := range dirs {
		d := filepath.Join(base, "c"+strconv.Itoa(i))
		dirs[i] = d
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
		if err := unix.Mount("bench", d, "tmpfs", 0, "size=1m"); err != nil {
			return fmt.Errorf("mounting %q: %w", d, err)
		}
		defer unix.Unmount(d, unix.MNT_DETACH)
		for name, content := range map[string][]byte{"known": known, "drift": append(append([]byte{}, prog...), "drift"...), "true": trueBin, "script": script} {
			if err := os.WriteFile(filepath.Join(d, name), content, 0o755); err != nil {
				return err
			}
		}
	}
	// (b) first, on an unwatched tmpfs, then the same file watched by each
	// listener in turn.
	sides := listeners(a, list)
	for _, f := range strings.Split(files, ",") {
		if err := latency(sides, dirs[0], f, latN); err != nil {
			return err
		}
	}
	// (a) exec storms of drifted execs in place (each one an event the
	// listener must answer: refused with EPERM), each rate run by every
	// listener in turn so that the machine's load falls on all alike.
	for _, r := range strings.Split(rates, ",") {
		rate, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || rate < 0 {
			return fmt.Errorf("rate %q", r)
		}
		res := make([]stormResult, len(sides))
		for round := 0; round < stormRounds; round++ {
			for _, i := range rand.Perm(len(sides) - 1) {
				r, err := storm(sides[i+1], dirs[0], rate, dur, &reported)
				if err != nil {
					return err
				}
				res[i+1].add(r)
			}
		}
		target := "flat out"
		if rate > 0 {
			target = strconv.Itoa(rate) + "/s"
		}
		for i, sd := range sides[1:] {
			r := res[i+1]
			fmt.Printf("(a) %-8s %-10s %d runs of %v: attempts=%d refused=%d decided=%d reported=%d lost=%d; median rate=%.0f/s (best %.0f/s) cpu=%.1f%% of one core, %.2f us per event (load %s)\n",
				target, sd.name, len(r.rates), dur, r.attempts, r.eperm, r.decided, r.reported, r.attempts-r.decided, median(r.rates), quantile(r.rates, 1), median(r.cpu), median(r.cpuPerEvent), load())
		}
	}
	// (c) 100 containers, each with its list compiled and its files seen.
	for i, d := range dirs {
		if err := a.WatchDir("c"+strconv.Itoa(i), "bench", "", d, list); err != nil {
			return err
		}
		for _, f := range []string{"known", "drift"} {
			cmd := exec.Command(os.Args[0])
			cmd.Env = []string{"BULWARK_CANARY_EXEC=" + filepath.Join(d, f)}
			_ = cmd.Run()
		}
	}
	runtime.GC()
	rss, hwm := memory()
	fmt.Printf("(c) containers=%d rss=%.1fMB peak=%.1fMB (agent library and this harness in one process; load %s)\n", len(dirs), rss, hwm, load())
	cancel()
	return <-done
}

func digest(b []byte) string {
	h := sha256.Sum256(b)
	return allowlist.Digest(h).String()
}

// latency times fork+exec+wait of the file in a child process, in rounds
// that go through every side in turn (unwatched, then each listener), so
// that the machine's load falls on all alike.
func latency(sides []side, dir, name string, n int) error {
	file := filepath.Join(dir, name)
	times := make([][]float64, len(sides))
	events := make([]int64, len(sides))
	for r := 0; r < latRounds; r++ {
		for _, i := range rand.Perm(len(sides)) {
			sd := sides[i]
			traceMark("SIDE " + sd.name)
			var stop func() int64
			if sd.start != nil {
				var err error
				if stop, err = sd.start(dir, true); err != nil {
					return err
				}
			}
			cmd := exec.Command(os.Args[0])
			cmd.Env = []string{"BENCH_ROLE=latency", "BENCH_FILE=" + file, "BENCH_N=" + strconv.Itoa(n/latRounds)}
			out, err := cmd.Output()
			if stop != nil {
				events[i] += stop()
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return fmt.Errorf("latency round: %v: %s", err, ee.Stderr)
			}
			if err != nil {
				return fmt.Errorf("latency round: %v", err)
			}
			for _, f := range strings.Fields(string(out)) {
				v, _ := strconv.ParseFloat(f, 64)
				times[i] = append(times[i], v)
			}
		}
	}
	q := quantile
	m0 := q(times[0], 0.5)
	fmt.Printf("(b) fork+exec+wait of %q (listed), %d each, median / p10 / p90:\n", name, len(times[0]))
	for i, sd := range sides {
		m := q(times[i], 0.5)
		fmt.Printf("    %-11s %5.0f / %5.0f / %5.0f us  added %+6.1f us (%+5.1f%%)  events/exec %.2f\n",
			sd.name, m, q(times[i], 0.1), q(times[i], 0.9), m-m0, 100*(m-m0)/m0, float64(events[i])/float64(len(times[i])))
	}
	return nil
}

// side is one way to run the execs: unwatched (start nil) or under a
// listener that start puts on dir, answering allow (or deny); stop removes
// it and returns the events it answered.
type side struct {
	name  string
	start func(dir string, allow bool) (stop func() int64, err error)
}

// listeners are the sides the bench compares: none, the floor listener and
// the agent; with BENCH_FLOOR_POLL set, also the floor that polls before
// every read (floorpoll), as the listeners did before reading again; with
// BENCH_FLOOR_KEEP, a floor whose thread lives across rounds as the
// agent's does (floorkeep).
func listeners(a *agent.Agent, list *allowlist.List) []side {
	floor := func(readAgain bool) func(dir string, allow bool) (func() int64, error) {
		return func(dir string, allow bool) (func() int64, error) {
			f, err := startFloor(dir, allow, readAgain)
			if err != nil {
				return nil, err
			}
			return func() int64 { f.stop(); return f.events.Load() }, nil
		}
	}
	agent := func(dir string, _ bool) (func() int64, error) {
		before := a.Stats().Execs
		if err := a.WatchDir("bench", "bench", "", dir, list); err != nil {
			return nil, err
		}
		return func() int64 {
			if err := a.UnwatchDir(dir); err != nil {
				fmt.Fprintln(os.Stderr, "bench/agent: unwatching:", err)
			}
			return a.Stats().Execs - before
		}, nil
	}
	sides := []side{{"none", nil}, {"floor", floor(true)}, {"agent", agent}}
	if os.Getenv("BENCH_FLOOR_POLL") != "" {
		sides = append(sides, side{"floorpoll", floor(false)})
	}
	if os.Getenv("BENCH_FLOOR_KEEP") != "" {
		sides = append(sides, side{"floorkeep", keptFloor()})
	}
	return sides
}

// stormResult adds up the runs of one listener at one rate.
type stormResult struct {
	attempts, eperm, decided, reported int64
	rates, cpu                         []float64
	// cpuPerEvent is this process's CPU time per decided event (us): the
	// listener's own cost, less moved by other load than the rate.
	cpuPerEvent []float64
}

func (s *stormResult) add(r stormResult) {
	s.attempts += r.attempts
	s.eperm += r.eperm
	s.decided += r.decided
	s.reported += r.reported
	s.rates = append(s.rates, r.rates...)
	s.cpu = append(s.cpu, r.cpu...)
	s.cpuPerEvent = append(s.cpuPerEvent, r.cpuPerEvent...)
}

// storm runs the storm role against one listener: drifted execs at rate
// (0: flat out) for dur.
func storm(sd side, dir string, rate int, dur time.Duration, reported *atomic.Int64) (stormResult, error) {
	stop, err := sd.start(dir, false)
	if err != nil {
		return stormResult{}, err
	}
	rb := reported.Load()
	cpu0 := cpuTime()
	t0 := time.Now()
	n := 1
	if rate == 0 {
		n = storms // flat out: several generators, so events queue up
	}
	outs := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		cmd := exec.Command(os.Args[0])
		cmd.Env = []string{"BENCH_ROLE=storm", "BENCH_FILE=" + filepath.Join(dir, "drift"), "BENCH_RATE=" + strconv.Itoa(rate), "BENCH_DURATION=" + dur.String()}
		wg.Go(func() { outs[i], errs[i] = cmd.Output() })
	}
	wg.Wait()
	el := time.Since(t0)
	cpu := cpuTime() - cpu0
	r := stormResult{decided: stop()}
	for i := range n {
		if errs[i] != nil {
			return r, fmt.Errorf("storm at %d/s: %v", rate, errs[i])
		}
		var attempts, eperm int64
		fmt.Sscanf(string(outs[i]), "%d %d", &attempts, &eperm)
		r.attempts += attempts
		r.eperm += eperm
	}
	r.reported = reported.Load() - rb
	r.rates = []float64{float64(r.decided) / el.Seconds()}
	r.cpu = []float64{100 * cpu.Seconds() / el.Seconds()}
	if r.decided > 0 {
		r.cpuPerEvent = []float64{float64(cpu.Microseconds()) / float64(r.decided)}
	}
	return r, nil
}

func quantile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[int(p*float64(len(s)-1))]
}

func median(v []float64) float64 { return quantile(v, 0.5) }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func memory() (rss, hwm float64) {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = v / 1024
		case "VmHWM:":
			hwm = v / 1024
		}
	}
	return
}

// stormRole execs BENCH_FILE in place at BENCH_RATE per second (0: flat out)
// for BENCH_DURATION; every exec must fail with EPERM (an escape would
// replace this process, which then prints nothing). Prints "attempts eperm".
func stormRole() {
	file := os.Getenv("BENCH_FILE")
	rate, _ := strconv.Atoi(os.Getenv("BENCH_RATE"))
	dur, _ := time.ParseDuration(os.Getenv("BENCH_DURATION"))
	argv := []string{file}
	var attempts, eperm int64
	start := time.Now()
	for time.Since(start) < dur {
		if rate > 0 {
			due := start.Add(time.Duration(attempts) * time.Second / time.Duration(rate))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		attempts++
		if err := syscall.Exec(file, argv, nil); errors.Is(err, syscall.EPERM) {
			eperm++
		}
	}
	fmt.Println(attempts, eperm)
}

// latencyRole times BENCH_N fork+exec+wait of BENCH_FILE (microseconds,
// one per line).
func latencyRole() {
	file := os.Getenv("BENCH_FILE")
	n, _ := strconv.Atoi(os.Getenv("BENCH_N"))
	for range n {
		t0 := time.Now()
		var ee *exec.ExitError
		if err := exec.Command(file).Run(); err != nil && !(errors.As(err, &ee) && ee.ExitCode() == canary.ProgramExit) {
			fmt.Fprintln(os.Stderr, "latency exec:", err)
			os.Exit(1)
		}
		fmt.Println(time.Since(t0).Microseconds())
	}
}

// traceMark writes s to ftrace's marker when BENCH_TRACE is set (tracefs
// mounted): sides can then be told apart in a trace of the bench.
func traceMark(s string) {
	if os.Getenv("BENCH_TRACE") == "" {
		return
	}
	_ = os.WriteFile("/sys/kernel/tracing/trace_marker", []byte(s+"\n"), 0)
}
