package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/bulwark-sec/bulwark/internal/bpflsm"
)

// latencyPer is the execs of one program in one block.
const latencyPer = 20

// latencyRounds is the number of rounds (bulwark_latency_rounds on the
// kernel's command line, default 8): each times latencyPer execs of each
// program without the programs and as many with them.
func latencyRounds() int {
	if v, err := strconv.Atoi(os.Getenv("bulwark_latency_rounds")); err == nil && v > 0 {
		return v
	}
	return 8
}

// tiny is a static program of 129 bytes that exits 0: the smallest exec
// there is, so what the hooks add is the largest share of it.
const tiny = "/bin/tiny"

func writeTiny() error {
	const base = 0x400000
	code := []byte{0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05} // mov eax, 60 (exit); xor edi, edi; syscall
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	for _, v := range []any{uint16(2), uint16(0x3e), uint32(1), uint64(base + 64 + 56), uint64(64), uint64(0),
		uint32(0), uint16(64), uint16(56), uint16(1), uint16(0), uint16(0), uint16(0)} {
		_ = binary.Write(&b, le, v) // ELF header: executable, x86-64, entry after the one program header
	}
	size := uint64(64 + 56 + len(code))
	for _, v := range []any{uint32(1), uint32(5), uint64(0), uint64(base), uint64(base), size, size, uint64(0x1000)} {
		_ = binary.Write(&b, le, v) // PT_LOAD, R+X, the whole file at base
	}
	b.Write(code)
	return os.WriteFile(tiny, b.Bytes(), 0o755)
}

// latencyProgram is one program whose exec is timed.
type latencyProgram struct {
	name string
	argv []string
	list []string // files listed for it (the kernel maps the interpreter and libc of a dynamic one)
}

var latencyPrograms = []latencyProgram{
	{name: "static", argv: []string{tiny}, list: []string{tiny}},
	{name: "dynamic", argv: []string{dyn}, list: []string{dyn, ldso, libc}},
}

// latency measures what the agent's programs add to an allowed exec:
// fork+exec+wait of a listed static program (tiny: exit(0)) and a listed
// dynamic one (the host's /bin/true: the kernel maps ld.so, which maps
// libc), in blocks with no program loaded ("without") and with the three
// programs loaded and attached, this process's cgroup watched in prevent
// with mmap checks (as the agent watches a container whose list knows its
// libraries) and the files listed ("with"). Blocks alternate, and the
// order within a round alternates too (AB BA AB ...), so a trend in the
// host's load hits both sides alike. Printed, not judged: the guest is
// emulated on a shared machine, so only the ratio means anything.
func latency(rounds int) error {
	if err := writeTiny(); err != nil {
		return err
	}
	var cg syscall.Stat_t
	if err := syscall.Stat(cgDir, &cg); err != nil {
		return fmt.Errorf("reading cgroup id of %q: %w", cgDir, err)
	}
	type samples struct{ without, with, blockRatio []float64 }
	res := make([]samples, len(latencyPrograms))
	var loads []float64
	start := time.Now()
	for r := range rounds {
		sides := []bool{false, true}
		if r%2 == 1 {
			sides = []bool{true, false}
		}
		blockMedian := make([][2]float64, len(latencyPrograms))
		for _, with := range sides {
			var enf *bpflsm.Enforcer
			if with {
				t0 := time.Now()
				var err error
				if enf, err = watchForLatency(cg.Ino); err != nil {
					return err
				}
				loads = append(loads, float64(time.Since(t0).Microseconds()))
			}
			for i, p := range latencyPrograms {
				d, err := timeExecs(p.argv, latencyPer)
				if err != nil {
					if enf != nil {
						_ = enf.Close()
					}
					return err
				}
				if with {
					res[i].with = append(res[i].with, d...)
					blockMedian[i][1] = quantile(d, 0.5)
				} else {
					res[i].without = append(res[i].without, d...)
					blockMedian[i][0] = quantile(d, 0.5)
				}
			}
			if enf == nil {
				continue
			}
			s, err := enf.Stats()
			_ = enf.Close()
			if err != nil {
				return err
			}
			// Every exec and mapping was checked and allowed: none of the
			// timed work was refused or reported.
			if s.Checked < uint64(len(latencyPrograms)*latencyPer) || s.Allowed != s.Checked || s.Refused != 0 || s.Reported != 0 {
				return fmt.Errorf("latency round %d: counters %+v, want every check allowed", r, s)
			}
		}
		for i := range latencyPrograms {
			res[i].blockRatio = append(res[i].blockRatio, blockMedian[i][1]/blockMedian[i][0])
		}
	}
	for i, p := range latencyPrograms {
		s := res[i]
		m0, m1 := quantile(s.without, 0.5), quantile(s.with, 0.5)
		fmt.Printf("BULWARK latency program=%s execs=%d+%d rounds=%d us_without_p10/p50/p90=%.0f/%.0f/%.0f us_with_p10/p50/p90=%.0f/%.0f/%.0f ratio_p50=%.3f added_pct=%.1f ratio_p10=%.3f block_ratio_median=%.3f\n",
			p.name, len(s.without), len(s.with), rounds,
			quantile(s.without, 0.1), m0, quantile(s.without, 0.9),
			quantile(s.with, 0.1), m1, quantile(s.with, 0.9),
			m1/m0, 100*(m1-m0)/m0, quantile(s.with, 0.1)/quantile(s.without, 0.1), quantile(s.blockRatio, 0.5))
	}
	fmt.Printf("BULWARK latency load_attach_watch_us_p50=%.0f total_s=%.1f\n", quantile(loads, 0.5), time.Since(start).Seconds())
	return nil
}

// watchForLatency loads and attaches the programs, lists the timed files
// for cgroup cg and watches it in prevent with mmap checks.
func watchForLatency(cg uint64) (*bpflsm.Enforcer, error) {
	enf, err := bpflsm.Load()
	if err != nil {
		return nil, err
	}
	for _, p := range latencyPrograms {
		for _, f := range p.list {
			id, err := bpflsm.FileIDOf(f)
			if err == nil {
				err = enf.Allow(cg, id)
			}
			if err != nil {
				_ = enf.Close()
				return nil, err
			}
		}
	}
	if err := enf.Watch(cg, bpflsm.ModePrevent, true); err != nil {
		_ = enf.Close()
		return nil, err
	}
	return enf, nil
}

// timeExecs returns the microseconds of each of n fork+exec+wait of argv
// (vfork-style clone, no files passed: the least user-space work around
// the exec, so the ratio is the kernel's).
func timeExecs(argv []string, n int) ([]float64, error) {
	out := make([]float64, 0, n)
	attr := &syscall.ProcAttr{Env: []string{}}
	for range n {
		start := time.Now()
		pid, err := syscall.ForkExec(argv[0], argv, attr)
		if err != nil {
			return nil, fmt.Errorf("timing execs of %q: %w", argv[0], err)
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			return nil, fmt.Errorf("timing execs of %q: waiting: %w", argv[0], err)
		}
		if !ws.Exited() || ws.ExitStatus() != 0 {
			return nil, fmt.Errorf("timing execs of %q: status %v", argv[0], ws)
		}
		out = append(out, float64(time.Since(start).Microseconds()))
	}
	return out, nil
}

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[int(q*float64(len(s)-1))]
}
