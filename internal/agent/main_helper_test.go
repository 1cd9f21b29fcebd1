package agent

import (
	"os"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/canary"
)

// TestMain lets the test binary serve as the canary helper, and as an
// agent of its own (gaterecover_test.go).
func TestMain(m *testing.M) {
	canary.MaybeHelper()
	maybeChildAgent() // gaterecover_test.go
	os.Exit(m.Run())
}
