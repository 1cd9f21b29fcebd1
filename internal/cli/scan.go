package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/report"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/vulndb"
)

// ExitIncomplete is scan's exit code for an inventory that could not be
// read in whole (damaged records of a package database or lock file, whose
// packages and vulnerabilities may be missing) when no finding failed the
// scan and it gates: --fail-on, or --fail-on-incomplete. Documented in the
// README with the other codes.
const ExitIncomplete = 3

func newScanCmd(g *globalOptions) *cobra.Command {
	var failIncomplete bool
	var (
		img           imageOptions
		out           outputOptions
		dbPath        string
		severity      string
		failOn        string
		ignoreUnfixed bool
		vexFiles      []string
		maxAge        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "scan SOURCE",
		Short: "Find known vulnerabilities in an image or SBOM",
		Long: `Match the packages of an image (any source sbom reads) or of an SBOM file
(Bulwark json or CycloneDX json) against the local advisory database
(bulwark db update / db import). Nothing is fetched from the network but the
image itself.

Exit codes: 0 no finding at or above --fail-on (or no --fail-on), 1 findings
at or above --fail-on remain, 2 usage or runtime error, 3 no such finding but
the inventory is incomplete (a damaged package database or lock file: its
records are listed in the report) and --fail-on or --fail-on-incomplete is
given; --fail-on-incomplete=false turns that off.`,
		Example: `  bulwark db import ./osv/Debian/all.zip ./osv/Go/all.zip ./osv/npm/all.zip
  bulwark scan registry.example.com/app:1.4 --fail-on high
  bulwark scan ./image.tar --ignore-unfixed --vex app.openvex.json --format sarif -o scan.sarif`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(out.format, out.formats); err != nil {
				return err
			}
			minSev, ok := match.ParseSeverity(severity)
			if !ok {
				return fmt.Errorf("unknown --severity %q (want unknown, low, medium, high or critical)", severity)
			}
			var failSev match.Severity
			if failOn != "" {
				if failSev, ok = match.ParseSeverity(failOn); !ok {
					return fmt.Errorf("unknown --fail-on %q (want unknown, low, medium, high or critical)", failOn)
				}
			}
			vex, err := match.LoadVEX(vexFiles...)
			if err != nil {
				return err
			}
			s, err := loadInventory(cmd, g, args[0], img)
			if err != nil {
				return err
			}
			if dbPath == "" {
				if dbPath, err = vulndb.DefaultPath(); err != nil {
					return err
				}
			}
			db, err := openExistingDB(dbPath)
			if err != nil {
				return err
			}
			defer db.Close()
			st, err := db.Status(cmd.Context())
			if err != nil {
				return fmt.Errorf("reading advisory database %s: %w", dbPath, err)
			}
			if maxAge > 0 && st.Age > maxAge && !g.quiet {
				fmt.Fprintf(g.stderr, "warning: the advisory database was last updated %s ago (older than --db-max-age %s); run bulwark db update\n", st.Age.Round(time.Hour), maxAge)
			}
			res, err := match.Match(cmd.Context(), db, s)
			if err != nil {
				return fmt.Errorf("matching %s: %w", args[0], err)
			}
			vex.Apply(res, imageIDs(s))
			res.Filter(minSev, ignoreUnfixed)
			rep := report.New(s, res, report.Database{Path: dbPath, Updated: formatTime(st.Updated), Records: st.Records})
			if err := out.write(cmd, func(w io.Writer) error { return report.Encode(w, rep, out.format) }); err != nil {
				return err
			}
			if failOn != "" {
				if h, any := res.Highest(); any && h >= failSev {
					return &exitError{code: ExitFindings, err: fmt.Errorf("%d vulnerabilities, the highest %s, at or above --fail-on %s", countAtLeast(res, failSev), h, failSev)}
				}
			}
			if !cmd.Flags().Changed("fail-on-incomplete") {
				failIncomplete = failOn != ""
			}
			if failIncomplete && s.Incomplete {
				return &exitError{code: ExitIncomplete, err: fmt.Errorf("incomplete inventory: %d records of package databases or lock files could not be read; their packages were not matched", len(s.Problems))}
			}
			return nil
		},
	}
	img.addFlags(cmd)
	img.addStreamFlags(cmd)
	out.addFlags(cmd, report.Formats)
	f := cmd.Flags()
	f.StringVar(&dbPath, "db", "", "advisory database (default $XDG_CACHE_HOME/bulwark/vulndb/osv.db)")
	f.StringVar(&severity, "severity", "unknown", "report only findings at or above this severity")
	f.StringVar(&failOn, "fail-on", "", "exit 1 when a finding at or above this severity remains (low, medium, high, critical)")
	f.BoolVar(&ignoreUnfixed, "ignore-unfixed", false, "hide findings that have no published fix")
	f.BoolVar(&failIncomplete, "fail-on-incomplete", false, "exit 3 when the inventory is incomplete (a damaged package database or lock file) and no finding failed the scan (default: on with --fail-on)")
	f.StringSliceVar(&vexFiles, "vex", nil, "OpenVEX document(s): not_affected and fixed statements suppress findings (listed separately)")
	f.DurationVar(&maxAge, "db-max-age", 72*time.Hour, "warn when the advisory database is older than this (0: never)")
	return cmd
}

// loadInventory reads SOURCE as an SBOM file when it is one, else opens and
// catalogs it as an image.
func loadInventory(cmd *cobra.Command, g *globalOptions, source string, o imageOptions) (*sbom.SBOM, error) {
	if fi, err := os.Stat(source); err == nil && fi.Mode().IsRegular() && looksLikeJSON(source) {
		f, err := os.Open(source)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		s, err := sbom.Decode(f)
		if err != nil {
			return nil, fmt.Errorf("reading SBOM %s: %w", source, err)
		}
		if s.Source.Input == "" {
			s.Source.Input = source
		}
		return s, nil
	}
	return buildSBOM(cmd, g, source, o, false)
}

func looksLikeJSON(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 64)
	n, _ := f.Read(b)
	return strings.HasPrefix(strings.TrimSpace(string(b[:n])), "{")
}

// openExistingDB opens the advisory database, refusing to create an empty
// one: a scan against no data would report a clean image.
func openExistingDB(path string) (*vulndb.DB, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no advisory database at %s: run bulwark db update (online) or bulwark db import FILE (offline) first", path)
	}
	db, err := vulndb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening advisory database %s: %w", path, err)
	}
	return db, nil
}

// imageIDs are the names a VEX document may use for the scanned image.
func imageIDs(s *sbom.SBOM) []string {
	ids := []string{s.Source.Name, s.Source.Digest}
	if s.Source.Digest != "" {
		name := s.Source.Name
		if i := strings.LastIndexAny(name, "@"); i > 0 {
			name = name[:i]
		}
		if i := strings.LastIndex(name, "/"); i >= 0 {
			name = name[i+1:]
		}
		ids = append(ids, "pkg:oci/"+name+"@"+strings.ReplaceAll(s.Source.Digest, ":", "%3A"))
	}
	return ids
}

func countAtLeast(res *match.Result, min match.Severity) int {
	n := 0
	for _, f := range res.Findings {
		if f.Severity >= min {
			n++
		}
	}
	return n
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
