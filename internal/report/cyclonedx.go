package report

import (
	"fmt"
	"io"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// CycloneDX writes the inventory as CycloneDX 1.6 with a vulnerabilities
// section; each vulnerability names the components it affects by bom-ref.
// Suppressed findings carry their VEX analysis.
func CycloneDX(w io.Writer, r *Scan) error {
	bom := sbom.CycloneDX(r.SBOM)
	refs := map[string]string{} // purl -> bom-ref
	if bom.Components != nil {
		for _, c := range *bom.Components {
			if c.PackageURL != "" {
				if _, ok := refs[c.PackageURL]; !ok {
					refs[c.PackageURL] = c.BOMRef
				}
			}
		}
	}
	var vulns []cdx.Vulnerability
	add := func(f match.Finding) {
		v := cdx.Vulnerability{
			BOMRef:      fmt.Sprintf("vuln:%d", len(vulns)),
			ID:          f.ID,
			Description: f.Summary,
			Affects:     &[]cdx.Affects{{Ref: refs[f.Package.PURL]}},
		}
		if len(f.Aliases) > 0 {
			var rv []cdx.VulnerabilityReference
			for _, a := range f.Aliases {
				rv = append(rv, cdx.VulnerabilityReference{ID: a, Source: &cdx.Source{Name: "OSV", URL: "https://osv.dev/vulnerability/" + a}})
			}
			v.References = &rv
		}
		rating := cdx.VulnerabilityRating{Severity: cdxSeverity(f.Severity)}
		if f.CVSS != nil {
			score := f.CVSS.Score
			rating.Score, rating.Vector = &score, f.CVSS.Vector
			rating.Method = cdx.ScoringMethodCVSSv31
			switch f.CVSS.Version {
			case "3.0":
				rating.Method = cdx.ScoringMethodCVSSv3
			case "4.0":
				rating.Method = cdx.ScoringMethodCVSSv4
			}
		}
		v.Ratings = &[]cdx.VulnerabilityRating{rating}
		if f.FixedVersion != "" {
			v.Recommendation = "Upgrade " + f.Package.Name + " to " + f.FixedVersion
		}
		if s := f.Suppression; s != nil {
			v.Analysis = &cdx.VulnerabilityAnalysis{State: cdxState(s.Status), Detail: s.Justification}
		}
		vulns = append(vulns, v)
	}
	for _, f := range r.Findings {
		add(f)
	}
	for _, f := range r.Suppressed {
		add(f)
	}
	bom.Vulnerabilities = &vulns
	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	enc.SetEscapeHTML(false)
	return enc.EncodeVersion(bom, cdx.SpecVersion1_6)
}

func cdxSeverity(s match.Severity) cdx.Severity {
	switch s {
	case match.SeverityCritical:
		return cdx.SeverityCritical
	case match.SeverityHigh:
		return cdx.SeverityHigh
	case match.SeverityMedium:
		return cdx.SeverityMedium
	case match.SeverityLow:
		return cdx.SeverityLow
	}
	return cdx.SeverityUnknown
}

func cdxState(status string) cdx.ImpactAnalysisState {
	if status == "fixed" {
		return cdx.IASResolved
	}
	return cdx.IASNotAffected
}
