package governance

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// Formats Render writes.
var Formats = []string{"table", "json", "csv"}

// Rows are the report flattened: one row per (regulation, class, store,
// service, region) observed, and one per granted application never
// observed. The table and CSV formats write them.
func (r Report) Rows() [][]string {
	rows := [][]string{{"regulation", "class", "allowed_regions", "store", "service", "region", "access", "count", "last", "status"}}
	for _, s := range r.Sections {
		allowed := "any"
		if s.Regions != nil {
			allowed = strings.Join(s.Regions, " ")
		}
		seen := map[string]bool{}
		for _, a := range s.Observed {
			seen[a.Service] = true
			status := "ok"
			switch {
			case !a.Granted && !a.InResidency:
				status = "UNGRANTED+RESIDENCY"
			case !a.Granted:
				status = "UNGRANTED"
			case !a.InResidency:
				status = "RESIDENCY"
			}
			rows = append(rows, []string{s.Regulation, s.Class, allowed, a.Store, orDash(a.Service), orDash(a.Region),
				"observed", strconv.FormatInt(a.Count, 10), a.Last.UTC().Format(time.RFC3339), status})
		}
		for _, g := range s.Granted {
			if !seen[g] {
				rows = append(rows, []string{s.Regulation, s.Class, allowed, strings.Join(s.Stores, " "), g, "-", "granted", "0", "-", "ok"})
			}
		}
		for _, sec := range s.Secrets {
			to := s.SecretsReleasedTo[sec]
			if len(to) == 0 {
				rows = append(rows, []string{s.Regulation, s.Class, allowed, "secret:" + sec, "-", "-", "secret", "0", "-", "ok"})
			}
			for _, svc := range to {
				rows = append(rows, []string{s.Regulation, s.Class, allowed, "secret:" + sec, svc, "-", "released", "-", "-", "ok"})
			}
		}
	}
	return rows
}

// defuse keeps a spreadsheet from reading a cell as a formula, as
// OWASP's CSV-injection guidance asks: a value from an agent or a
// catalogue whose start (after spaces and quotes) is = + - @ (or their
// full-width forms), a tab or a CR gets a leading '. So does each part of
// it that follows a separator a spreadsheet may split at (, ; tab |,
// whatever the locale), since that part can become a cell of its own. A
// lone "-" (the report's "none") stays.
func defuse(c string) string {
	var b strings.Builder
	start := 0
	for i, r := range c {
		if strings.ContainsRune(",;\t|", r) {
			b.WriteString(defusePart(c[start:i]))
			b.WriteRune(r)
			start = i + 1
		}
	}
	b.WriteString(defusePart(c[start:]))
	return defusePart(b.String()) // a leading tab or CR itself
}

// defusePart prefixes part with ' when it starts a formula.
func defusePart(part string) string {
	if part == "-" {
		return part
	}
	rest := strings.TrimLeft(part, " \"")
	if rest == "" {
		return part
	}
	r, _ := utf8.DecodeRuneInString(rest)
	if strings.ContainsRune("=+-@\t\r＝＋－＠", r) {
		return "'" + part
	}
	return part
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Render writes r in format (table, json or csv).
func (r Report) Render(w io.Writer, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "csv":
		cw := csv.NewWriter(w)
		for _, row := range r.Rows() {
			for i, c := range row {
				row[i] = defuse(c)
			}
			cw.Write(row)
		}
		cw.Flush()
		return cw.Error()
	case "table", "":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for i, row := range r.Rows() {
			if i == 0 {
				row = upper(row)
			}
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "\n%d flows, %d to no catalogued store; %d violations\n", r.Flows, r.Unmatched, len(r.Violations))
		for _, v := range r.Violations {
			fmt.Fprintf(w, "  %s %s -> %s [%s]: %s\n", strings.ToUpper(v.Kind), orDash(v.Service), v.Store, strings.Join(v.Regulations, ","), v.Detail)
		}
		return nil
	}
	return fmt.Errorf("unknown format %q (want table, json or csv)", format)
}

func upper(row []string) []string {
	out := make([]string, len(row))
	for i, c := range row {
		out[i] = strings.ToUpper(c)
	}
	return out
}
