package cli

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// pflag reads a `backquoted` word in a flag's usage as the name of its
// value, so "--ca-dir `bulwark ca intermediate`" showed in server --help
// as if the flag took a command. No usage may hold a backquote.
func TestFlagUsageHasNoBackquote(t *testing.T) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if strings.Contains(f.Usage, "`") {
				t.Errorf("%s --%s: usage %q holds a backquote", c.CommandPath(), f.Name, f.Usage)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRootCmd(io.Discard, io.Discard))
}

// A command given the wrong number of arguments says what it takes:
// cobra's own "accepts 1 arg(s), received 0" named neither the command nor
// the argument.
func TestArgumentCountErrorsShowUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"runtime", "running"}, "bulwark runtime running ADVISORY"},
		{[]string{"sbom"}, "bulwark sbom SOURCE"},
		{[]string{"verify", "a", "b"}, "bulwark verify IMAGE"},
	} {
		_, stderr, code := run(t, tc.args...)
		if code != ExitError || !strings.Contains(stderr, tc.want) {
			t.Errorf("bulwark %s: exit %d, stderr %q; want %d and %q", strings.Join(tc.args, " "), code, stderr, ExitError, tc.want)
		}
	}
}

// A mistyped subcommand is an error: "bulwark db upate" printed db's help
// and exited 0, so a CI step with the typo passed having done nothing.
func TestUnknownSubcommandFails(t *testing.T) {
	_, stderr, code := run(t, "db", "upate")
	if code != ExitError || !strings.Contains(stderr, `unknown command "upate" for "bulwark db"`) || !strings.Contains(stderr, "did you mean update?") {
		t.Errorf("bulwark db upate: exit %d, stderr %q; want %d naming it and suggesting update", code, stderr, ExitError)
	}
	if _, stderr, code := run(t, "fuzz", "campaign", "list"); code != ExitError {
		t.Errorf("bulwark fuzz campaign list: exit %d, stderr %q", code, stderr)
	}
	// the group alone still shows its help
	if stdout, stderr, code := run(t, "db"); code != ExitOK || !strings.Contains(stdout+stderr, "Available Commands") {
		t.Errorf("bulwark db: exit %d, output %q", code, stdout+stderr)
	}
}

// A wrong --log-level names the levels there are (it said "slog: level
// string \"verbose\": unknown name").
func TestLogLevelErrorNamesLevels(t *testing.T) {
	_, stderr, code := run(t, "version", "--log-level", "verbose")
	if code != ExitError || !strings.Contains(stderr, `--log-level "verbose"`) || !strings.Contains(stderr, "debug, info, warn or error") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// -o naming a directory, or a file in a missing directory, is refused
// before the image is read: it failed after the whole scan with "rename
// /tmp/.bulwark-123 /tmp/out: file exists".
func TestOutputDestinationCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ out, want string }{
		{dir, "is a directory"},
		{filepath.Join(dir, "missing", "x.json"), "does not exist"},
	} {
		for _, args := range [][]string{
			{"sbom", "no-such-image.tar", "-o", tc.out},
			{"scan", "no-such-image.tar", "-o", tc.out},
			{"policy", "check", "no-such-image.tar", "-o", tc.out},
		} {
			_, stderr, code := run(t, args...)
			if code != ExitError || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "no-such-image") {
				t.Errorf("%s: exit %d, stderr %q; want %d, %q, before the image", strings.Join(args, " "), code, stderr, ExitError, tc.want)
			}
		}
	}
}
