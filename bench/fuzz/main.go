// Command fuzz measures `bulwark fuzz` on the planted-fault server of
// internal/fuzz/fuzztest: requests per second and the findings, faulty and
// clean, RUNS times each. See README.md.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/bulwark-sec/bulwark/internal/fuzz"
	"github.com/bulwark-sec/bulwark/internal/fuzz/fuzztest"
)

func main() {
	bin := flag.String("bulwark", "bulwark", "the bulwark binary")
	requests := flag.Int("requests", 5000, "--max-requests of each run")
	runs := flag.Int("runs", 3, "runs per server")
	flag.Parse()
	if err := run(*bin, *requests, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench/fuzz:", err)
		os.Exit(1)
	}
}

func run(bin string, requests, runs int) error {
	dir, err := os.MkdirTemp("", "bench-fuzz-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	spec := filepath.Join(dir, "openapi.json")
	if err := os.WriteFile(spec, []byte(fuzztest.Spec), 0o600); err != nil {
		return err
	}
	for _, faulty := range []bool{true, false} {
		var rates []float64
		var last *fuzz.Result
		for i := range runs {
			srv := &fuzztest.Server{Faulty: faulty}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			hs := &http.Server{Handler: srv.Handler()}
			go hs.Serve(ln)
			res, err := fuzzOnce(bin, spec, "http://"+ln.Addr().String(), requests, i)
			hs.Close()
			if err != nil {
				return err
			}
			rates = append(rates, float64(res.Requests)/res.Seconds)
			last = res
		}
		slices.Sort(rates)
		name := "clean"
		if faulty {
			name = "faulty"
		}
		fmt.Printf("%s server: %d requests per run, median %.0f requests/s (min %.0f, max %.0f), %d findings (last run, seed %d):\n",
			name, last.Requests, rates[len(rates)/2], rates[0], rates[len(rates)-1], len(last.Findings), last.Seed)
		for _, f := range last.Findings {
			fmt.Printf("  %-18s %-16s %s (shrunk in %d steps)\n", f.Rule, f.Operation, f.Message, f.ShrinkSteps)
		}
	}
	return nil
}

func fuzzOnce(bin, spec, target string, requests, seed int) (*fuzz.Result, error) {
	cmd := exec.Command(bin, "fuzz", "--openapi", spec, "--target", target, "--auth", "Authorization",
		"--max-requests", strconv.Itoa(requests), "--seed", strconv.Itoa(seed), "--format", "json")
	cmd.Env = append(os.Environ(), fuzz.AuthEnv+"1=Bearer "+fuzztest.Token)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 1) {
		return nil, fmt.Errorf("%s: %v: %s", cmd, err, errb.String())
	}
	var res fuzz.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("reading the report: %w", err)
	}
	return &res, nil
}
