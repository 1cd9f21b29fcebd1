package policy

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/owenrumney/go-sarif/v2/sarif"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// Formats lists the output formats of Encode.
var Formats = []string{"table", "json", "sarif"}

// Encode writes d in the named format.
func Encode(w io.Writer, d *Decision, format string) error {
	switch format {
	case "table", "":
		return Table(w, d)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(d)
	case "sarif":
		return SARIF(w, d)
	}
	return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

// Table lists every rule with its status and evidence.
func Table(w io.Writer, d *Decision) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tSTATUS\tEVIDENCE")
	for _, r := range d.Rules {
		lines := r.Evidence
		if r.Message != "" {
			lines = append([]string{r.Message}, lines...)
		}
		for _, wv := range r.Waived {
			lines = append(lines, "waived: "+wv)
		}
		for _, wv := range r.Waivers {
			lines = append(lines, fmt.Sprintf("waiver by %s until %s: %s", wv.Owner, wv.Expires.Format("2006-01-02"), wv.Reason))
		}
		if len(lines) == 0 {
			lines = []string{r.Description}
		}
		status := strings.ToUpper(string(r.Status))
		for i, l := range lines {
			if i == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, status, l)
			} else {
				fmt.Fprintf(tw, "\t\t%s\n", l)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, wv := range d.ExpiredWaivers {
		fmt.Fprintf(w, "expired waiver (%s, owner %s, expired %s): %s\n", wv.Rule, wv.Owner, wv.Expires.Format("2006-01-02"), wv.Reason)
	}
	verdict := "PASS"
	if !d.Pass {
		verdict = "FAIL (" + strings.Join(d.Failed(), ", ") + ")"
	}
	_, err := fmt.Fprintf(w, "\n%s: %s under policy %s (%s)\n", d.Image, verdict, d.Policy, d.PolicyDigest)
	return err
}

// SARIF writes one result per failed or waived rule.
func SARIF(w io.Writer, d *Decision) error {
	rep, err := sarif.New(sarif.Version210)
	if err != nil {
		return err
	}
	run := sarif.NewRunWithInformationURI(sbom.ToolName, "https://github.com/bulwark-sec/bulwark")
	run.Tool.Driver.WithVersion(sbom.ToolVersion)
	for _, r := range d.Rules {
		if r.Status != StatusFail && r.Status != StatusWaived {
			continue
		}
		desc := r.Description
		if desc == "" {
			desc = r.Name
		}
		run.AddRule(r.Name).WithShortDescription(sarif.NewMultiformatMessageString(desc))
		text := strings.Join(append(append([]string{}, r.Evidence...), r.Waived...), "; ")
		if r.Message != "" {
			text = r.Message + "; " + text
		}
		res := run.CreateResultForRule(r.Name).WithLevel(map[Status]string{StatusFail: "error", StatusWaived: "note"}[r.Status]).
			WithMessage(sarif.NewTextMessage(strings.TrimSuffix(text, "; ")))
		loc := sarif.NewLocationWithPhysicalLocation(sarif.NewPhysicalLocation().WithArtifactLocation(sarif.NewSimpleArtifactLocation(d.Image)))
		res.AddLocation(loc)
		if r.Status == StatusWaived {
			sup := sarif.NewSuppression("external").WithLocation(loc).WithGuid(sbom.StableUUID(d.Image, r.Name, d.PolicyDigest))
			status, just := "accepted", "waived"
			if len(r.Waivers) > 0 {
				just = r.Waivers[0].Reason
			}
			sup.Status, sup.Justification = &status, &just
			res.AddSuppression(sup)
		}
	}
	rep.AddRun(run)
	return rep.PrettyWrite(w)
}
