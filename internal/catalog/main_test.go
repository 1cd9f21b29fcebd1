package catalog

import (
	"flag"
	"os"
	"testing"
)

// TestMain bounds the minimisation of a new fuzz input to 100 runs unless
// -fuzzminimizetime is given. Go's default, 60 s an input, let an input
// whose coverage only looked new (the rpm and zip readers' coverage varies a
// little from run to run) take the whole of a short run: FuzzCheckRPMDB made
// 6 executions in 8 s with the default, 663 bounded.
func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(fl *flag.Flag) { given = given || fl.Name == "test.fuzzminimizetime" })
	if !given {
		flag.Set("test.fuzzminimizetime", "100x")
	}
	os.Exit(m.Run())
}
