package controle2e

import (
	"os"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/canary"
)

// TestMain lets this test binary be the agent's canary helper, as
// bulwark-agent is (internal/canary runs the program again to exec the
// canary's drifted file).
func TestMain(m *testing.M) {
	canary.MaybeHelper()
	os.Exit(m.Run())
}
