package cli

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"
)

// profiling is the hidden --cpuprofile flag (env BULWARK_CPUPROFILE): a
// CPU profile of one command, for the benchmarks (bench/stream-speed.sh).
type profiling struct {
	file, memFile string
	out           *os.File
}

func (p *profiling) addFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&p.file, "cpuprofile", "", "write a CPU profile of the command to this file")
	f.MarkHidden("cpuprofile")
	f.StringVar(&p.memFile, "memprofile", "", "write a heap profile (allocations) at the end of the command to this file")
	f.MarkHidden("memprofile")
}

func (p *profiling) start() error {
	if p.file == "" || p.out != nil {
		return nil
	}
	f, err := os.Create(p.file)
	if err != nil {
		return fmt.Errorf("creating CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("starting CPU profile: %w", err)
	}
	p.out = f
	return nil
}

func (p *profiling) stop() {
	if p.memFile != "" {
		if f, err := os.Create(p.memFile); err == nil {
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	if p.out == nil {
		return
	}
	pprof.StopCPUProfile()
	p.out.Close()
	p.out = nil
}
