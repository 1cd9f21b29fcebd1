package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// tree builds root -> sbom (flags format, cache-dir) and root -> scan
// (fail-on), as the real CLI has.
func tree() (root, sbom, scan *cobra.Command) {
	root = &cobra.Command{Use: "bulwark"}
	root.PersistentFlags().String("config", "", "")
	sbom = &cobra.Command{Use: "sbom"}
	sbom.Flags().String("format", "table", "")
	sbom.Flags().String("cache-dir", "", "")
	sbom.Flags().StringSlice("vex", nil, "")
	scan = &cobra.Command{Use: "scan"}
	scan.Flags().String("fail-on", "", "")
	scan.Flags().String("format", "table", "")
	root.AddCommand(sbom, scan)
	return root, sbom, scan
}

func writeConfig(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	file := writeConfig(t, "cache-dir: /from/file\nformat: json\nsbom:\n  format: spdx\nscan:\n  fail-on: high\n")
	_, sbom, _ := tree()
	t.Setenv("BULWARK_CACHE_DIR", "/from/env")
	sbom.Flags().Set("vex", "a.json")
	if err := Apply(sbom, file); err != nil {
		t.Fatal(err)
	}
	get := func(name string) string { return sbom.Flags().Lookup(name).Value.String() }
	if got := get("cache-dir"); got != "/from/env" {
		t.Errorf("cache-dir = %q: the environment beats the file", got)
	}
	if got := get("format"); got != "spdx" {
		t.Errorf("format = %q: the command's section beats the top level", got)
	}

	// a flag given on the command line beats everything
	_, sbom2, _ := tree()
	sbom2.Flags().Set("format", "cyclonedx")
	if err := Apply(sbom2, file); err != nil {
		t.Fatal(err)
	}
	if got := sbom2.Flags().Lookup("format").Value.String(); got != "cyclonedx" {
		t.Errorf("format = %q, want the flag's", got)
	}
}

func TestUnknownKeysAreErrors(t *testing.T) {
	for body, want := range map[string]string{
		"cache-dri: /x\n":          `unknown key "cache-dri"`,
		"sbom:\n  formt: json\n":   `sbom: unknown key "formt"`,
		"scna:\n  fail-on: high\n": `unknown command section "scna"`,
	} {
		_, sbom, _ := tree()
		err := Apply(sbom, writeConfig(t, body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", body, err, want)
		}
	}
}

func TestBadEnvValue(t *testing.T) {
	root, _, _ := tree()
	c := &cobra.Command{Use: "n"}
	c.Flags().Int("max", 1, "")
	root.AddCommand(c)
	t.Setenv("BULWARK_MAX", "lots")
	if err := Apply(c, ""); err == nil || !strings.Contains(err.Error(), "BULWARK_MAX") {
		t.Errorf("err = %v", err)
	}
}
