package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/owenrumney/go-sarif/v2/sarif"

	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// SARIF writes a SARIF 2.1.0 log: one rule per vulnerability id, one result
// per (package, vulnerability), located at the file that is evidence for the
// package. Suppressed findings are results with an accepted suppression.
func SARIF(w io.Writer, r *Scan) error {
	rep, err := sarif.New(sarif.Version210)
	if err != nil {
		return err
	}
	run := sarif.NewRunWithInformationURI(sbom.ToolName, "https://github.com/bulwark-sec/bulwark")
	run.Tool.Driver.WithVersion(sbom.ToolVersion)
	add := func(f match.Finding) {
		rule := run.AddRule(f.ID).
			WithName("Vulnerability").
			WithShortDescription(sarif.NewMultiformatMessageString(ruleText(f))).
			WithFullDescription(sarif.NewMultiformatMessageString(ruleText(f))).
			WithHelp(sarif.NewMultiformatMessageString(help(f)))
		props := sarif.NewPropertyBag()
		props.Add("security-severity", securitySeverity(f))
		props.Add("tags", []string{"security", "vulnerability", strings.ToLower(f.Severity.String())})
		rule.WithProperties(props.Properties)

		loc := strings.TrimPrefix(f.Package.Location, "/")
		if loc == "" {
			loc = r.Source.Name
		}
		res := run.CreateResultForRule(f.ID).
			WithLevel(level(f.Severity)).
			WithMessage(sarif.NewTextMessage(message(f)))
		location := sarif.NewLocationWithPhysicalLocation(
			sarif.NewPhysicalLocation().WithArtifactLocation(sarif.NewSimpleArtifactLocation(loc)))
		res.AddLocation(location)
		if f.Suppression != nil {
			// go-sarif writes unset guid and location as null, which the
			// schema refuses: set both.
			sup := sarif.NewSuppression("external").WithLocation(location).WithGuid(suppressionGUID(f))
			sup.Status = ptr("accepted")
			sup.Justification = ptr(strings.TrimSpace(f.Suppression.Status + " " + f.Suppression.Justification))
			res.AddSuppression(sup)
		}
	}
	for _, f := range r.Findings {
		add(f)
	}
	for _, f := range r.Suppressed {
		add(f)
	}
	// Whether the inventory is complete, as run properties, and each record
	// that could not be read as a warning of the tool's execution.
	props := sarif.NewPropertyBag()
	props.Add("bulwark:inventory:complete", !r.Incomplete)
	problems := make([]string, 0, len(r.Problems))
	inv := sarif.NewInvocation().WithExecutionSuccess(true)
	for _, p := range r.Problems {
		problems = append(problems, p.String())
		n := sarif.NewNotification().WithMessage(sarif.NewTextMessage("incomplete inventory: " + p.String()))
		n.Level = "warning"
		inv.ToolExecutionNotifications = append(inv.ToolExecutionNotifications, n)
	}
	if r.Incomplete {
		props.Add("bulwark:inventory:problems", problems)
		run.AddInvocations(inv)
	}
	run.AttachPropertyBag(props)
	rep.AddRun(run)
	return rep.PrettyWrite(w)
}

func ruleText(f match.Finding) string {
	if f.Summary != "" {
		return f.ID + ": " + f.Summary
	}
	return f.ID
}

func help(f match.Finding) string {
	s := fmt.Sprintf("%s (%s) in %s %s.", f.ID, f.Severity, f.Package.Name, f.Package.Version)
	if f.FixedVersion != "" {
		s += " Fixed in " + f.FixedVersion + "."
	}
	if len(f.Aliases) > 0 {
		s += " Also known as " + strings.Join(f.Aliases, ", ") + "."
	}
	return s
}

func message(f match.Finding) string {
	s := fmt.Sprintf("%s %s: %s (%s)", f.Package.Name, f.Package.Version, f.ID, f.Severity)
	if f.FixedVersion != "" {
		s += ", fixed in " + f.FixedVersion
	} else {
		s += ", no fix published"
	}
	return s
}

func level(s match.Severity) string {
	switch s {
	case match.SeverityCritical, match.SeverityHigh:
		return "error"
	case match.SeverityMedium:
		return "warning"
	}
	return "note"
}

// securitySeverity is the CVSS-like score code-scanning UIs sort by.
func securitySeverity(f match.Finding) string {
	if f.CVSS != nil {
		return fmt.Sprintf("%.1f", f.CVSS.Score)
	}
	return map[match.Severity]string{
		match.SeverityCritical: "9.5", match.SeverityHigh: "8.0", match.SeverityMedium: "5.5",
		match.SeverityLow: "2.0", match.SeverityUnknown: "0.0",
	}[f.Severity]
}

func ptr[T any](v T) *T { return &v }

// suppressionGUID is a stable UUID for a suppressed (package, vulnerability).
func suppressionGUID(f match.Finding) string {
	return sbom.StableUUID(f.Package.PURL, f.ID, f.Suppression.Document)
}
