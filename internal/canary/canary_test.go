package canary

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestProgramRuns: the drifted program is a real executable that exits
// with its own status, so an unrefused canary is seen as one that ran.
func TestProgramRuns(t *testing.T) {
	p := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(p, Program(), 0o700); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if out, err := exec.Command(p).CombinedOutput(); !errors.As(err, &ee) || ee.ExitCode() != exitDrifted {
		t.Fatalf("running the canary program: %v %q, want exit status %d", err, out, exitDrifted)
	}
}

// TestRunWithoutHelper: a program that never calls MaybeHelper runs
// itself instead of the helper (here /bin/true, exit 0): that proves
// nothing, and must not be reported as a drifted file that ran (it was, and
// an embedding test then saw a canary "fail" with enforcement working).
func TestRunWithoutHelper(t *testing.T) {
	helperPath = "/bin/true"
	defer func() { helperPath = "/proc/self/exe" }()
	err := Run(context.Background(), Options{Dir: t.TempDir()})
	var fe *FailedError
	if err == nil || errors.As(err, &fe) {
		t.Fatalf("Run with a program that is not the helper: %v, want a setup error", err)
	}
}

// TestRunWithoutEnforcement: nothing watches the directory, so the canary
// runs and Run says enforcement is not working.
func TestRunWithoutEnforcement(t *testing.T) {
	dir := t.TempDir()
	err := Run(context.Background(), Options{Dir: dir})
	var fe *FailedError
	if !errors.As(err, &fe) || !fe.Ran {
		t.Fatalf("Run on an unwatched directory: %v, want a FailedError that ran", err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 0 {
		t.Fatalf("the canary file was left behind: %v", left)
	}
}

// TestRunSetupError: an unwritable place is a setup error, not a verdict.
func TestRunSetupError(t *testing.T) {
	err := Run(context.Background(), Options{Dir: "/nonexistent/bulwark"})
	var fe *FailedError
	if err == nil || errors.As(err, &fe) {
		t.Fatalf("Run in a missing directory: %v, want a setup error", err)
	}
}

func TestMain(m *testing.M) {
	MaybeHelper()
	os.Exit(m.Run())
}
