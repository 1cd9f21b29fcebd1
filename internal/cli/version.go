package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// Stamped at build time by cmd/bulwark (-ldflags "-X main.version=..."),
// through Stamp; empty in a plain `go build`.
var stamped struct{ version, commit, time string }

// Stamp records the version, commit and commit time stamped into the binary
// at build time; empty values fall back to the module's build information.
// The version also goes into the documents bulwark writes (SBOM, SARIF).
func Stamp(version, commit, commitTime string) {
	stamped.version, stamped.commit, stamped.time = version, commit, commitTime
	if v := buildVersion(); v.Version != "dev" {
		sbom.ToolVersion = v.Version
	}
}

// versionInfo identifies the binary.
type versionInfo struct {
	Version    string `json:"version"`
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commitTime,omitempty"`
	Modified   bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	Go         string `json:"go"`
	Platform   string `json:"platform"`
}

func buildVersion() versionInfo {
	bi, _ := debug.ReadBuildInfo()
	return versionFrom(stamped.version, stamped.commit, stamped.time, bi)
}

// versionFrom prefers the stamped values and fills what is missing from bi:
// the main module's version (a tag, or a pseudo-version Go derives from the
// VCS) and the vcs.revision, vcs.time and vcs.modified settings.
func versionFrom(version, commit, commitTime string, bi *debug.BuildInfo) versionInfo {
	v := versionInfo{Version: version, Commit: commit, CommitTime: commitTime, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if v.Commit == "" {
					v.Commit = s.Value
				}
			case "vcs.time":
				if v.CommitTime == "" {
					v.CommitTime = s.Value
				}
			case "vcs.modified":
				v.Modified = s.Value == "true" && commit == ""
			}
		}
		if bi.GoVersion != "" {
			v.Go = bi.GoVersion
		}
	}
	if v.Version == "" {
		v.Version = "dev"
	}
	return v
}

func (v versionInfo) write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "bulwark %s\n", v.Version)
	commit := v.Commit
	if commit == "" {
		commit = "unknown (built without VCS information; stamp it with -ldflags, see README)"
	}
	if v.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(&b, "  commit:      %s\n", commit)
	if v.CommitTime != "" {
		fmt.Fprintf(&b, "  commit time: %s\n", v.CommitTime)
	}
	fmt.Fprintf(&b, "  go:          %s %s\n", v.Go, v.Platform)
	_, err := io.WriteString(w, b.String())
	return err
}

func newVersionCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version and commit of bulwark",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := buildVersion()
			switch format {
			case "table", "text":
				return v.write(cmd.OutOrStdout())
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			return fmt.Errorf("unknown --format %q (want text or json)", format)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "text", "output format: text or json")
	return cmd
}

// setVersionFlag gives root a --version flag printing what `bulwark
// version` prints.
func setVersionFlag(root *cobra.Command) {
	v := buildVersion()
	var b strings.Builder
	_ = v.write(&b)
	root.Version = v.Version
	root.SetVersionTemplate(strings.ReplaceAll(b.String(), "{{", "{{`{{`}}"))
}
