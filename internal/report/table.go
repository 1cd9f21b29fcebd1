package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// Table writes findings grouped by package, the package with the most severe
// finding first, then the suppressed findings with their VEX justification.
func Table(w io.Writer, r *Scan) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PACKAGE\tVERSION\tVULNERABILITY\tSEVERITY\tFIXED IN\tTYPE\tTITLE")
	writeGroups(tw, r.Findings, func(f match.Finding) string {
		fix := f.FixedVersion
		if f.Status == match.StatusUnfixed {
			fix = "(no fix)"
		}
		return fix
	})
	if err := tw.Flush(); err != nil {
		return err
	}
	counts := map[match.Severity]int{}
	for _, f := range r.Findings {
		counts[f.Severity]++
	}
	var parts []string
	for s := match.SeverityCritical; s >= match.SeverityUnknown; s-- {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], strings.ToLower(s.String())))
		}
	}
	summary := "no vulnerabilities"
	if len(parts) > 0 {
		summary = fmt.Sprintf("%s (%s)", plural(len(r.Findings), "vulnerability", "vulnerabilities"), strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "\n%s: %s", r.Source.Name, summary)
	if len(r.Suppressed) > 0 {
		fmt.Fprintf(w, "; %d suppressed by VEX", len(r.Suppressed))
	}
	fmt.Fprintln(w)
	if r.SBOM != nil {
		sbom.WriteIncomplete(w, r.SBOM)
	}
	if len(r.Suppressed) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nSuppressed by VEX:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PACKAGE\tVERSION\tVULNERABILITY\tSEVERITY\tSTATEMENT\tTYPE\tTITLE")
	writeGroups(tw, r.Suppressed, func(f match.Finding) string {
		s := f.Suppression
		why := s.Status
		if s.Justification != "" {
			why += ": " + s.Justification
		}
		return why
	})
	return tw.Flush()
}

// writeGroups writes findings (already sorted by severity) grouped by
// package in order of first appearance; last is the fifth column, the
// advisory's title the seventh.
func writeGroups(tw io.Writer, fs []match.Finding, last func(match.Finding) string) {
	type group struct{ fs []match.Finding }
	var order []string
	groups := map[string]*group{}
	for _, f := range fs {
		k := f.Package.Name + "\x00" + f.Package.Version + "\x00" + f.Package.Location
		if groups[k] == nil {
			groups[k] = &group{}
			order = append(order, k)
		}
		groups[k].fs = append(groups[k].fs, f)
	}
	for _, k := range order {
		for i, f := range groups[k].fs {
			name, version := f.Package.Name, f.Package.Version
			if i > 0 {
				name, version = "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, version, f.ID, f.Severity, last(f), f.Package.Type, title(f.Summary))
		}
	}
}

// titleWidth bounds the TITLE column, as Trivy's table does.
const titleWidth = 60

// title is an advisory summary on one line, cut to titleWidth runes.
func title(summary string) string {
	t := []rune(strings.Join(strings.Fields(summary), " "))
	if len(t) > titleWidth {
		return strings.TrimSpace(string(t[:titleWidth-1])) + "…"
	}
	return string(t)
}

// plural is "1 vulnerability", "2 vulnerabilities".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
