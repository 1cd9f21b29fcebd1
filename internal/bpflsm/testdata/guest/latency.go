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
// libraries) and the files listed ("with"); with bulwark_latency_attached=1
// also attached with the cgroup not watched ("attached": what every other
// process of the node pays). Blocks alternate, and the order rotates each
// round (AB BA AB ...), so a trend in the host's load hits every side
// alike. Printed, not judged: the guest is emulated on a shared machine,
// so only the ratios mean anything.
func latency(rounds int) error {
	if err := writeTiny(); err != nil {
		return err
	}
	var cg syscall.Stat_t
	if err := syscall.Stat(cgDir, &cg); err != nil {
		return fmt.Errorf("reading cgroup id of %q: %w", cgDir, err)
	}
	sides := []string{"without", "with"}
	if os.Getenv("bulwark_latency_attached") == "1" {
		sides = append(sides, "attached")
	}
	// samples[program][side]; blockRatio[program][side]: per round, the
	// side's block median over the without block's.
	samples := make([]map[string][]float64, len(latencyPrograms))
	blockRatio := make([]map[string][]float64, len(latencyPrograms))
	for i := range latencyPrograms {
		samples[i], blockRatio[i] = map[string][]float64{}, map[string][]float64{}
	}
	var loads []float64
	start := time.Now()
	for r := range rounds {
		blockMedian := make([]map[string]float64, len(latencyPrograms))
		for k := range sides {
			side := sides[(k+r)%len(sides)]
			d, loaded, err := latencyBlock(cg.Ino, side, r)
			if err != nil {
				return err
			}
			if loaded > 0 {
				loads = append(loads, loaded)
			}
			for i := range latencyPrograms {
				samples[i][side] = append(samples[i][side], d[i]...)
				if blockMedian[i] == nil {
					blockMedian[i] = map[string]float64{}
				}
				blockMedian[i][side] = quantile(d[i], 0.5)
			}
		}
		for i := range latencyPrograms {
			for _, side := range sides[1:] {
				blockRatio[i][side] = append(blockRatio[i][side], blockMedian[i][side]/blockMedian[i]["without"])
			}
		}
	}
	for i, p := range latencyPrograms {
		w := samples[i]["without"]
		m0 := quantile(w, 0.5)
		for _, side := range sides[1:] {
			v := samples[i][side]
			m1 := quantile(v, 0.5)
			fmt.Printf("BULWARK latency program=%s side=%s execs=%d+%d rounds=%d us_without_p10/p50/p90=%.0f/%.0f/%.0f us_%s_p10/p50/p90=%.0f/%.0f/%.0f ratio_p50=%.3f added_pct=%.1f ratio_p10=%.3f block_ratio_median=%.3f\n",
				p.name, side, len(w), len(v), rounds,
				quantile(w, 0.1), m0, quantile(w, 0.9),
				side, quantile(v, 0.1), m1, quantile(v, 0.9),
				m1/m0, 100*(m1-m0)/m0, quantile(v, 0.1)/quantile(w, 0.1), quantile(blockRatio[i][side], 0.5))
		}
	}
	fmt.Printf("BULWARK latency load_attach_watch_us_p50=%.0f total_s=%.1f\n", quantile(loads, 0.5), time.Since(start).Seconds())
	return nil
}

// latencyBlock times latencyPer execs of each program on one side and
// returns them, with the microseconds loading took (0 without).
func latencyBlock(cg uint64, side string, round int) ([][]float64, float64, error) {
	var enf *bpflsm.Enforcer
	var loaded float64
	if side != "without" {
		t0 := time.Now()
		var err error
		if enf, err = watchForLatency(cg, side == "with"); err != nil {
			return nil, 0, err
		}
		loaded = float64(time.Since(t0).Microseconds())
		defer func() { _ = enf.Close() }()
	}
	out := make([][]float64, len(latencyPrograms))
	for i, p := range latencyPrograms {
		d, err := timeExecs(p.argv, latencyPer)
		if err != nil {
			return nil, 0, err
		}
		out[i] = d
	}
	if enf == nil {
		return out, 0, nil
	}
	s, err := enf.Stats()
	if err != nil {
		return nil, 0, err
	}
	// Watched: every exec and mapping was checked and allowed, none of
	// the timed work refused or reported. Not watched: nothing checked.
	ok := s.Checked >= uint64(len(latencyPrograms)*latencyPer) && s.Allowed == s.Checked && s.Refused == 0 && s.Reported == 0
	if side != "with" {
		ok = s.Checked == 0
	}
	if !ok {
		return nil, 0, fmt.Errorf("latency round %d, %s: counters %+v", round, side, s)
	}
	return out, loaded, nil
}

// watchForLatency loads and attaches the programs, lists the timed files
// for cgroup cg and, with watch, watches it in prevent with mmap checks.
func watchForLatency(cg uint64, watch bool) (*bpflsm.Enforcer, error) {
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
	if !watch {
		return enf, nil
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
