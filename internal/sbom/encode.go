package sbom

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Formats lists the output formats of Encode.
var Formats = []string{"table", "json", "cyclonedx", "spdx"}

// Encode writes s in the named format.
func Encode(w io.Writer, s *SBOM, format string) error {
	switch format {
	case "table", "":
		return EncodeTable(w, s)
	case "json":
		return EncodeJSON(w, s)
	case "cyclonedx", "cyclonedx-json":
		return EncodeCycloneDX(w, s)
	case "spdx", "spdx-json":
		return EncodeSPDX(w, s)
	}
	return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

// EncodeJSON writes Bulwark's own JSON document (docs/json.md).
func EncodeJSON(w io.Writer, s *SBOM) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(s)
}

// EncodeTable writes one line per package for a person to read.
func EncodeTable(w io.Writer, s *SBOM) error {
	layerIndex := map[string]int{}
	for _, l := range s.Source.Layers {
		layerIndex[l.DiffID] = l.Index
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tTYPE\tLAYER\tLOCATION")
	for _, p := range s.Packages {
		layer := "-"
		if i, ok := layerIndex[p.Layer]; ok {
			layer = fmt.Sprint(i)
		}
		loc := ""
		if len(p.Locations) > 0 {
			loc = p.Locations[0].Path
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.Version, p.Type, layer, loc)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	counts := map[string]int{}
	for _, p := range s.Packages {
		counts[p.Type]++
	}
	types := make([]string, 0, len(counts))
	for t := range counts {
		types = append(types, t)
	}
	slices.Sort(types)
	var summary []string
	for _, t := range types {
		summary = append(summary, fmt.Sprintf("%d %s", counts[t], t))
	}
	distro := "no distro"
	if s.Distro != nil {
		distro = s.Distro.PrettyName
		if distro == "" {
			distro = s.Distro.ID + " " + s.Distro.VersionID
		}
	}
	fmt.Fprintf(w, "\n%s (%s): %d packages", s.Source.Name, distro, len(s.Packages))
	if len(summary) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(summary, ", "))
	}
	fmt.Fprintln(w)
	return WriteIncomplete(w, s)
}

// WriteIncomplete writes the table footer of an incomplete inventory: the
// records that could not be read, whose packages may be missing. It writes
// nothing for a complete one.
func WriteIncomplete(w io.Writer, s *SBOM) error {
	if !s.Incomplete {
		return nil
	}
	fmt.Fprintf(w, "\nINCOMPLETE INVENTORY: %d records could not be read; their packages may be missing:\n", len(s.Problems))
	for _, p := range s.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
	if len(s.Problems) == 0 {
		fmt.Fprintln(w, "  (the SBOM says so, without naming them)")
	}
	return nil
}
