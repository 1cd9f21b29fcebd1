package cli

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeCommands returns the `bin/bulwark ...` commands of the README's
// shell blocks, continuation lines joined, each cut at the first comment,
// pipe, redirection or `&&`.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Skipf("no README: %v", err)
	}
	var out []string
	inShell := false
	var cur string
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "```"):
			inShell = !inShell && strings.HasPrefix(line, "```sh")
			continue
		case !inShell:
			continue
		}
		if cur != "" || strings.Contains(line, "bin/bulwark ") {
			cur += " " + strings.TrimSuffix(strings.TrimSpace(line), "\\")
			if strings.HasSuffix(strings.TrimSpace(line), "\\") {
				continue
			}
			out = append(out, cur)
			cur = ""
		}
	}
	// Each piece of a line between &&, ;, | and $( that starts with
	// bin/bulwark is a command, up to a comment or a redirection.
	split := regexp.MustCompile(`&&|;|\||\$\(`)
	cut := regexp.MustCompile(`\s(#|>|2>|&)(\s|$)`)
	var cmds []string
	for _, line := range out {
		for _, piece := range split.Split(line, -1) {
			c, ok := strings.CutPrefix(strings.TrimSpace(piece), "bin/bulwark ")
			if !ok {
				continue
			}
			if loc := cut.FindStringIndex(c); loc != nil {
				c = c[:loc[0]]
			}
			cmds = append(cmds, strings.TrimRight(strings.TrimSpace(c), ")"))
		}
	}
	return cmds
}

// Every bulwark command the README shows names a command and flags the
// CLI has, and the walk-through's server, which registers a registry on
// 127.0.0.1:5000, allows that private address (the server refuses
// loopback registries otherwise, and the walk-through stalled there).
func TestReadmeCommands(t *testing.T) {
	cmds := readmeCommands(t)
	if len(cmds) < 20 {
		t.Fatalf("found %d bulwark commands in the README: %q", len(cmds), cmds)
	}
	root := NewRootCmd(io.Discard, io.Discard)
	root.InitDefaultVersionFlag() // added by Execute
	serverAllows := false
	for _, line := range cmds {
		args := strings.Fields(line)
		cmd, rest, err := root.Find(args)
		if err != nil {
			t.Errorf("README: bulwark %s: %v", line, err)
			continue
		}
		for _, a := range rest {
			if !strings.HasPrefix(a, "-") || a == "-" {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			var ok bool
			if strings.HasPrefix(a, "--") {
				ok = cmd.Flags().Lookup(name) != nil || cmd.InheritedFlags().Lookup(name) != nil
			} else {
				ok = cmd.Flags().ShorthandLookup(name) != nil || cmd.InheritedFlags().ShorthandLookup(name) != nil
			}
			if !ok {
				t.Errorf("README: bulwark %s: %s has no flag %s", line, cmd.CommandPath(), a)
			}
		}
		if cmd.CommandPath() == "bulwark server" && strings.Contains(line, "--allow-private-host 127.0.0.1:5000") {
			serverAllows = true
		}
	}
	if !serverAllows {
		t.Error("README: the walk-through's bulwark server does not allow the local registry (--allow-private-host 127.0.0.1:5000)")
	}
}
