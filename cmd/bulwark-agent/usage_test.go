package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/agent"
)

// A mistyped flag is named on stderr with exit 2: it used to exit 2 with
// nothing said, leaving a crash-looping pod without a reason in its log.
func TestUnknownFlagIsNamed(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := agent.Main(context.Background(), []string{"--moed", "prevent"}, &stdout, &stderr)
	if code != agent.ExitUsage {
		t.Fatalf("exit %d, want %d", code, agent.ExitUsage)
	}
	if !strings.Contains(stderr.String(), "--moed") {
		t.Errorf("stderr %q does not name the flag", stderr.String())
	}
}

// Each flag of --help shows one word for its value: pflag reads a
// `backquoted` word of a usage as the value's name, and --status-file showed
// as taking "bulwark-agent status".
func TestHelpValueNamesAreOneWord(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := agent.Main(context.Background(), []string{"--help"}, &stdout, &stderr); code != 0 {
		t.Errorf("--help exited %d: asking for help is not a bad flag", code)
	}
	help := stdout.String() + stderr.String()
	if !strings.Contains(help, "--status-file") {
		t.Fatalf("no --status-file in the help: %q", help)
	}
	line := regexp.MustCompile(`(?m)^\s+(?:-\w, )?--[\w-]+ (\S+(?: \S+)+) {2,}`)
	for _, m := range line.FindAllStringSubmatch(help, -1) {
		t.Errorf("a flag's value is named %q: %s", m[1], strings.TrimSpace(m[0]))
	}
}
