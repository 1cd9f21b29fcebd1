package match

import (
	"fmt"

	"github.com/openvex/go-vex/pkg/vex"
)

// Suppression records why a finding was suppressed.
type Suppression struct {
	Status          string `json:"status"` // not_affected or fixed
	Justification   string `json:"justification,omitempty"`
	ImpactStatement string `json:"impactStatement,omitempty"`
	Document        string `json:"document"`
	Author          string `json:"author,omitempty"`
}

// VEX is a set of OpenVEX documents.
type VEX struct {
	docs  []*vex.VEX
	files []string
}

// LoadVEX reads OpenVEX documents (JSON).
func LoadVEX(paths ...string) (*VEX, error) {
	v := &VEX{}
	for _, p := range paths {
		doc, err := vex.Open(p)
		if err != nil {
			return nil, fmt.Errorf("reading VEX document %s: %w", p, err)
		}
		v.docs = append(v.docs, doc)
		v.files = append(v.files, p)
	}
	return v, nil
}

// Apply moves findings that a statement marks not_affected or fixed to
// r.Suppressed. A statement applies when its vulnerability is any of the
// finding's ids and its product is the package's purl, or one of
// imageIDs (the image's name, digest or pkg:oci purl) with the package's
// purl among its subcomponents (or no subcomponents).
func (v *VEX) Apply(r *Result, imageIDs []string) {
	if v == nil || len(v.docs) == 0 {
		return
	}
	kept := r.Findings[:0]
	for _, f := range r.Findings {
		if s := v.statement(f, imageIDs); s != nil {
			f.Suppression = s
			r.Suppressed = append(r.Suppressed, f)
			continue
		}
		kept = append(kept, f)
	}
	r.Findings = kept
	r.Sort()
}

func (v *VEX) statement(f Finding, imageIDs []string) *Suppression {
	for i, doc := range v.docs {
		for _, id := range f.AllIDs() {
			var matches []vex.Statement
			matches = append(matches, doc.Matches(id, f.Package.PURL, nil)...)
			for _, img := range imageIDs {
				if img != "" {
					matches = append(matches, doc.Matches(id, img, []string{f.Package.PURL})...)
				}
			}
			if len(matches) == 0 {
				continue
			}
			s := matches[0] // the latest statement
			switch s.Status {
			case vex.StatusNotAffected, vex.StatusFixed:
				return &Suppression{
					Status:          string(s.Status),
					Justification:   string(s.Justification),
					ImpactStatement: s.ImpactStatement,
					Document:        v.files[i],
					Author:          doc.Author,
				}
			}
			return nil // affected / under_investigation: keep the finding
		}
	}
	return nil
}
