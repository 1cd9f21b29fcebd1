package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// SchemaVersion names the version of the scan JSON document.
const SchemaVersion = "bulwark.scan/v1"

// Scan is a scan report: the inventory it was computed from and the result.
type Scan struct {
	Schema string       `json:"schema"`
	SBOM   *sbom.SBOM   `json:"-"`
	Source sbom.Source  `json:"source"`
	Distro *sbom.Distro `json:"distro,omitempty"`
	// Database describes the advisory data the scan used.
	Database   Database        `json:"database"`
	Findings   []match.Finding `json:"findings"`
	Suppressed []match.Finding `json:"suppressed,omitempty"`
	Warnings   []string        `json:"warnings,omitempty"`
	// Incomplete and Problems are the inventory's: records that could not
	// be read, whose packages (and their findings) may be missing.
	Incomplete bool           `json:"incomplete,omitempty"`
	Problems   []sbom.Problem `json:"problems,omitempty"`
}

// Database describes the advisory database at scan time.
type Database struct {
	Path    string `json:"path,omitempty"`
	Updated string `json:"updated,omitempty"`
	Records int    `json:"records,omitempty"`
}

// New assembles a report.
func New(s *sbom.SBOM, res *match.Result, db Database) *Scan {
	return &Scan{
		Schema: SchemaVersion, SBOM: s, Source: s.Source, Distro: s.Distro, Database: db,
		Findings: res.Findings, Suppressed: res.Suppressed,
		Warnings:   append(append([]string{}, s.Warnings...), res.Warnings...),
		Incomplete: s.Incomplete, Problems: s.Problems,
	}
}

// Formats lists the formats of Encode.
var Formats = []string{"table", "json", "sarif", "cyclonedx"}

// Encode writes r in the named format.
func Encode(w io.Writer, r *Scan, format string) error {
	switch format {
	case "table", "":
		return Table(w, r)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(r)
	case "sarif":
		return SARIF(w, r)
	case "cyclonedx":
		return CycloneDX(w, r)
	}
	return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
}
