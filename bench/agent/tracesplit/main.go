// Command tracesplit splits a trace of bench/agent's (b) (bench/agent/trace.sh)
// into where an exec's time goes, per side: the execve call, the program's
// run after it, and the execve call when the listener was woken on the
// exec'ing CPU or on another one (docs/runtime-measured.md).
//
//	go run ./bench/agent/tracesplit -comm true /tmp/trace.txt
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// line is one event of the trace: "comm-pid [cpu] flags ts: what".
var line = regexp.MustCompile(`^\s*(.+)-(\d+)\s+\[(\d+)\]\s+\S+\s+([\d.]+):\s+(.*)$`)

type event struct {
	comm     string
	pid, cpu int
	us       float64
	what     string
	side     string
}

// exec is one execve of the program by one child.
type exec struct {
	side             string
	enter, ret, exit float64
	cpu              int
	comm             string      // after the execve: the program's
	listenerCPU      int         // where the listener read the event; -1 none
	reads            map[int]int // CPU+1 by task that read whole events in the call
}

func main() {
	comm := flag.String("comm", "true", "the program's comm after its exec (the file's name; a script's own)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: tracesplit [-comm NAME] TRACE")
		os.Exit(2)
	}
	evs, err := read(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracesplit:", err)
		os.Exit(1)
	}
	bySide := map[string][]*exec{}
	var sides []string
	for _, x := range execs(evs) {
		if x.comm != *comm || x.exit == 0 {
			continue
		}
		if bySide[x.side] == nil {
			sides = append(sides, x.side)
		}
		bySide[x.side] = append(bySide[x.side], x)
	}
	for _, s := range sides {
		xs := bySide[s]
		var call, run, same, other []float64
		for _, x := range xs {
			call = append(call, x.ret-x.enter)
			run = append(run, x.exit-x.ret)
			switch {
			case x.listenerCPU < 0:
			case x.listenerCPU == x.cpu:
				same = append(same, x.ret-x.enter)
			default:
				other = append(other, x.ret-x.enter)
			}
		}
		fmt.Printf("%-6s %4d execs: execve %4.0f us, run after it %4.0f us (medians)", s, len(xs), median(call), median(run))
		if n := len(same) + len(other); n > 0 {
			fmt.Printf("; listener on the exec's CPU %.0f%%: execve %.0f us, on another %.0f%%: %.0f us",
				100*float64(len(same))/float64(n), median(same), 100*float64(len(other))/float64(n), median(other))
		}
		fmt.Println()
	}
}

// read parses the trace; "SIDE name" markers name the side of what follows.
func read(path string) ([]event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading trace %s: %w", path, err)
	}
	defer f.Close()
	var evs []event
	side := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if i := strings.Index(m[5], "tracing_mark_write: SIDE "); i >= 0 {
			side = strings.TrimSpace(m[5][i+len("tracing_mark_write: SIDE "):])
			continue
		}
		pid, _ := strconv.Atoi(m[2])
		cpu, _ := strconv.Atoi(m[3])
		ts, _ := strconv.ParseFloat(m[4], 64)
		evs = append(evs, event{comm: m[1], pid: pid, cpu: cpu, us: ts * 1e6, what: m[5], side: side})
	}
	return evs, sc.Err()
}

// execs pairs each execve's entry with its return and its task's exit, and finds where the listener read the event in between (a
// read by another task returning whole fanotify events, 24 bytes each).
func execs(evs []event) []*exec {
	open := map[int]*exec{}
	var out []*exec
	var inCall []*exec // execs inside their execve call
	byPid := map[int]*exec{}
	for _, e := range evs {
		switch {
		case strings.HasPrefix(e.what, "sys_execve("):
			x := &exec{side: e.side, enter: e.us, cpu: e.cpu, listenerCPU: -1}
			open[e.pid] = x
			inCall = append(inCall, x)
		case strings.HasPrefix(e.what, "sys_execve -> "):
			if x := open[e.pid]; x != nil {
				x.ret = e.us
				delete(open, e.pid)
				byPid[e.pid] = x
				out = append(out, x)
				inCall = remove(inCall, x)
			}
		case strings.HasPrefix(e.what, "sys_exit_group("),
			strings.HasPrefix(e.what, "sched_switch: ") && strings.Contains(e.what, " prev_state=Z "):
			// exit_group, or the switch away from a task that exited
			// (a program that calls exit, as the bench's tiny one).
			if x := byPid[e.pid]; x != nil && x.exit == 0 {
				x.exit = e.us
				x.comm = e.comm
			}
		case strings.HasPrefix(e.what, "sys_read -> 0x"):
			n, err := strconv.ParseUint(strings.TrimPrefix(e.what, "sys_read -> 0x"), 16, 64)
			if err != nil || n == 0 || n%24 != 0 || n > 1<<20 {
				continue
			}
			for _, x := range inCall {
				if x.listenerCPU < 0 && open[e.pid] != x && x.reads[e.pid] == 0 {
					if x.reads == nil {
						x.reads = map[int]int{}
					}
					x.reads[e.pid] = e.cpu + 1
				}
			}
		case strings.HasPrefix(e.what, "sys_write(") && strings.HasSuffix(e.what, "count: 8)"):
			// An answer (struct fanotify_response) by a task that read
			// events: the listener, on the CPU it read on.
			for _, x := range inCall {
				if c := x.reads[e.pid]; x.listenerCPU < 0 && c > 0 {
					x.listenerCPU = c - 1
				}
			}
		}
	}
	return out
}

func remove(xs []*exec, x *exec) []*exec {
	for i := range xs {
		if xs[i] == x {
			return append(xs[:i], xs[i+1:]...)
		}
	}
	return xs
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
