package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/owenrumney/go-sarif/v2/sarif"
	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/admission"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

// checkFinding is one finding of `bulwark check` with where it is.
type checkFinding struct {
	File     string `json:"file"`
	Document int    `json:"document"` // the YAML document in the file, from 1
	// Line and Column (from 1) are where the offending field is (or the
	// nearest enclosing field present, when it is missing).
	Line   int    `json:"line"`
	Column int    `json:"column,omitempty"`
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	admission.Finding
	Message string `json:"message"`
}

// checkReport is the JSON output of `bulwark check`.
type checkReport struct {
	Objects  int            `json:"objects"`
	Findings []checkFinding `json:"findings"`
	Denied   int            `json:"denied"`
	// Level is the Pod Security Standards level applied where the
	// configuration names no other.
	Level string `json:"level"`
}

func newCheckCmd(g *globalOptions) *cobra.Command {
	var (
		files     []string
		cfgFile   string
		verify    bool
		format    string
		output    string
		level     string
		namespace string
		insecure  bool
	)
	cmd := &cobra.Command{
		Use:   "check -f DIR|FILE",
		Short: "Check Kubernetes YAML against the admission rules offline (for CI)",
		Long: `Evaluate the admission webhook's rules on Kubernetes manifests before they are
applied: least privilege, placement of sensitive workloads, owner labels, and
images pinned to digests. With --verify, images are also resolved and their
signatures and attestations verified against the registry, as the webhook
does on first sight.

Files are YAML or JSON, multi-document; directories are read recursively
(*.yaml, *.yml, *.json). Pods, Deployments, ReplicaSets, StatefulSets,
DaemonSets, Jobs and CronJobs are evaluated; other kinds are skipped.

Least privilege is a Pod Security Standards level, as Kubernetes defines
it: --level privileged, baseline or restricted, at a Kubernetes version
(restricted:v1.35) or latest (the default). It replaces the configuration's
pods.level; namespaces the configuration gives their own level keep it.
Bulwark's own rules (images, owner labels, placement, read-only root) are
reported apart, without a level.

Without --admission-config the level is restricted:latest in enforce mode
and no owner label or placement is required.

Each finding names file:line:column of the offending field (or of the
nearest enclosing field present, when the field is missing).

Exit status: 0 when nothing would be denied, 1 when an enforce rule is
broken, 2 on bad input (the message names file:line and the document).`,
		Example: `  bulwark check -f deploy/ --admission-config admission.yaml
  bulwark check -f app.yaml --level baseline:v1.33
  bulwark check -f app.yaml --verify -o sarif > check.sarif`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return errors.New("-f is required: a manifest file or directory")
			}
			if cmd.Flags().Changed("format") {
				if cmd.Flags().Changed("output") && format != output {
					return fmt.Errorf("-o %s and --format %s disagree (--format is the old spelling of -o)", output, format)
				}
				output = format
			}
			if !slices.Contains([]string{"table", "json", "sarif"}, output) {
				return fmt.Errorf("unknown output format %q (want table, json or sarif)", output)
			}
			cfg := &admission.Config{}
			if cfgFile != "" {
				var err error
				if cfg, err = admission.LoadConfig(cfgFile); err != nil {
					return err
				}
			}
			if level != "" {
				l, err := admission.ParseLevel(level)
				if err != nil {
					return fmt.Errorf("--level: %w", err)
				}
				cfg.Pods.Level = l
			}
			w, err := admission.New(cfg, admission.Options{Offline: !verify, Registry: sign.Options{Insecure: insecure}})
			if err != nil {
				return err
			}
			rep, err := runCheck(cmd.Context(), w, files, namespace, verify)
			if err != nil {
				return err
			}
			rep.Level = cfg.Pods.Level.String()
			if err := writeCheck(cmd.OutOrStdout(), rep, output); err != nil {
				return err
			}
			if rep.Denied > 0 {
				return &exitError{code: ExitFindings, err: fmt.Errorf("%d of %s would be denied", rep.Denied, checkCount(len(rep.Findings), "finding"))}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "file", "f", nil, "manifest file or directory (repeatable)")
	cmd.Flags().StringVar(&cfgFile, "admission-config", "", "the webhook's configuration file (docs/admission.md)")
	cmd.Flags().BoolVar(&verify, "verify", false, "resolve tags and verify signatures against the registry (needs the trust policy)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or sarif")
	cmd.Flags().StringVar(&format, "format", "table", "the old spelling of --output")
	cmd.Flags().StringVar(&level, "level", "", "Pod Security Standards level: privileged, baseline or restricted[:latest|:v1.N] (default: the configuration's, else restricted:latest)")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "namespace of objects that name none")
	cmd.Flags().BoolVar(&insecure, "insecure-registry", false, "allow plain-HTTP registries (localhost and 127.0.0.1 always may)")
	return cmd
}

// manifestFiles expands files and directories into manifest files.
func manifestFiles(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("reading manifests: %w", err)
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch strings.ToLower(filepath.Ext(p)) {
			case ".yaml", ".yml", ".json":
				if !d.IsDir() {
					out = append(out, p)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading manifests under %s: %w", a, err)
		}
	}
	return out, nil
}

func runCheck(ctx context.Context, w *admission.Webhook, args []string, namespace string, verify bool) (*checkReport, error) {
	files, err := manifestFiles(args)
	if err != nil {
		return nil, err
	}
	rep := &checkReport{Findings: []checkFinding{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading manifests: %w", err)
		}
		ms, err := admission.DecodeManifests(f, data)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if m.Object == nil {
				continue
			}
			rep.Objects++
			if m.Object.Namespace == "" {
				m.Object.Namespace = namespace
			}
			vctx, cancel := context.WithTimeout(ctx, w.Config().VerifyBudget+5*time.Second)
			findings := w.Check(vctx, m.Object, verify)
			cancel()
			for _, fd := range findings {
				line, col := m.Position(fd.Path)
				rep.Findings = append(rep.Findings, checkFinding{File: f, Document: m.Index + 1, Line: line, Column: col, Kind: m.Kind, Name: m.Name, Finding: fd, Message: fd.Message()})
				if fd.Mode == admission.Enforce {
					rep.Denied++
				}
			}
		}
	}
	return rep, nil
}

func writeCheck(w io.Writer, rep *checkReport, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	case "sarif":
		return checkSARIF(w, rep)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(rep.Findings) > 0 {
		fmt.Fprintln(tw, "LOCATION\tOBJECT\tRULE\tLEVEL\tMODE\tMESSAGE")
	}
	levels := 0
	for _, f := range rep.Findings {
		lvl := f.Level
		if lvl == "" {
			lvl = "bulwark"
		} else {
			levels++
		}
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\t%s\t%s\n", f.location(), f.Kind, f.Name, f.Rule, lvl, f.Mode, f.Message)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Findings) > 0 {
		fmt.Fprintln(w)
	}
	_, err := fmt.Fprintf(w, "%s, %s (%d of Pod Security Standards levels, %d of Bulwark's own rules), %d would be denied\n",
		checkCount(rep.Objects, "object"), checkCount(len(rep.Findings), "finding"), levels, len(rep.Findings)-levels, rep.Denied)
	return err
}

func checkSARIF(w io.Writer, rep *checkReport) error {
	s, err := sarif.New(sarif.Version210)
	if err != nil {
		return err
	}
	run := sarif.NewRunWithInformationURI(sbom.ToolName, "https://github.com/bulwark-sec/bulwark")
	run.Tool.Driver.WithVersion(sbom.ToolVersion)
	seen := map[string]bool{}
	for _, f := range rep.Findings {
		if !seen[f.Rule] {
			seen[f.Rule] = true
			run.AddRule(f.Rule).WithShortDescription(sarif.NewMultiformatMessageString("bulwark admission rule " + f.Rule))
		}
		level := map[admission.Mode]string{admission.Enforce: "error", admission.Warn: "warning", admission.Audit: "note"}[f.Mode]
		res := run.CreateResultForRule(f.Rule).WithLevel(level).WithMessage(sarif.NewTextMessage(f.Kind + "/" + f.Name + ": " + f.Message))
		loc := sarif.NewPhysicalLocation().WithArtifactLocation(sarif.NewSimpleArtifactLocation(filepath.ToSlash(f.File)))
		if f.Line > 0 {
			region := sarif.NewSimpleRegion(f.Line, f.Line)
			if f.Column > 0 {
				region = region.WithStartColumn(f.Column)
			}
			loc = loc.WithRegion(region)
		}
		res.AddLocation(sarif.NewLocationWithPhysicalLocation(loc))
	}
	s.AddRun(run)
	return s.PrettyWrite(w)
}

// location is file:line[:column].
func (f checkFinding) location() string {
	if f.Column > 0 {
		return fmt.Sprintf("%s:%d:%d", f.File, f.Line, f.Column)
	}
	return fmt.Sprintf("%s:%d", f.File, f.Line)
}

// checkCount is "1 object", "2 objects".
func checkCount(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
