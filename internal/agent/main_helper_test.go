package agent

import (
	"os"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/canary"
)

// TestMain lets the test binary serve as the canary helper.
func TestMain(m *testing.M) {
	canary.MaybeHelper()
	os.Exit(m.Run())
}
