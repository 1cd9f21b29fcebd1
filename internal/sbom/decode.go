package sbom

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/package-url/packageurl-go"
)

// ErrNotSBOM reports a document that is neither Bulwark JSON nor CycloneDX.
var ErrNotSBOM = errors.New("not a Bulwark or CycloneDX JSON SBOM")

// Decode reads an SBOM written by Bulwark (json) or any CycloneDX JSON
// document. From CycloneDX, packages come from components with a purl, and
// the distro from the operating-system component.
func Decode(r io.Reader) (*SBOM, error) {
	data, err := io.ReadAll(io.LimitReader(r, 1<<30))
	if err != nil {
		return nil, err
	}
	var probe struct {
		Schema      string `json:"schema"`
		BOMFormat   string `json:"bomFormat"`
		SPDXVersion string `json:"spdxVersion"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotSBOM, err)
	}
	switch {
	case strings.HasPrefix(probe.Schema, "bulwark.sbom/"):
		var s SBOM
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, fmt.Errorf("decoding Bulwark SBOM: %w", err)
		}
		return &s, nil
	case probe.BOMFormat == "CycloneDX":
		var bom cdx.BOM
		if err := cdx.NewBOMDecoder(bytes.NewReader(data), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
			return nil, fmt.Errorf("decoding CycloneDX: %w", err)
		}
		return fromCycloneDX(&bom), nil
	case probe.SPDXVersion != "":
		return nil, fmt.Errorf("%w: an SPDX document (%s), which is not read yet: give the image, or its SBOM from bulwark sbom -f cyclonedx or -f json", ErrNotSBOM, probe.SPDXVersion)
	}
	return nil, ErrNotSBOM
}

// purlTypes maps purl types to Bulwark package types.
var purlTypes = map[string]string{
	"deb": TypeDeb, "apk": TypeAPK, "rpm": TypeRPM, "golang": TypeGo, "npm": TypeNPM,
	"pypi": TypePython, "maven": TypeJava, "cargo": TypeRust, "gem": TypeGem,
	"composer": TypeComposer, "nuget": TypeDotnet,
}

func fromCycloneDX(bom *cdx.BOM) *SBOM {
	s := &SBOM{Schema: SchemaVersion, Packages: []Package{}}
	if m := bom.Metadata; m != nil && m.Component != nil {
		s.Source = Source{Kind: "sbom", Name: m.Component.Name, Digest: m.Component.Version}
	}
	if m := bom.Metadata; m != nil && m.Properties != nil {
		for _, prop := range *m.Properties {
			switch {
			case prop.Name == "bulwark:inventory:complete" && prop.Value != "true":
				s.Incomplete = true
			case strings.HasPrefix(prop.Name, "bulwark:inventory:problem:"):
				s.AddProblem(Problem{Message: prop.Value})
			}
		}
	}
	if bom.Components == nil {
		return s
	}
	for _, c := range *bom.Components {
		if c.Type == cdx.ComponentTypeOS {
			s.Distro = &Distro{ID: c.Name, VersionID: c.Version, PrettyName: c.Description}
			continue
		}
		p, err := packageurl.FromString(c.PackageURL)
		if err != nil {
			continue
		}
		typ, ok := purlTypes[p.Type]
		if !ok {
			continue
		}
		name := c.Name
		switch typ {
		case TypeGo, TypeComposer:
			name = strings.TrimPrefix(p.Namespace+"/"+p.Name, "/")
		case TypeNPM:
			name = strings.TrimPrefix(p.Namespace+"/"+p.Name, "/")
		}
		pkg := Package{Name: name, Version: c.Version, Type: typ, PURL: c.PackageURL}
		q := p.Qualifiers.Map()
		pkg.Arch = q["arch"]
		if up := q["upstream"]; up != "" {
			srcName, srcVersion, _ := strings.Cut(up, "@")
			if srcVersion == "" {
				srcVersion = c.Version
			}
			pkg.Source = &SourcePackage{Name: srcName, Version: srcVersion}
		}
		if c.Properties != nil {
			for _, prop := range *c.Properties {
				switch {
				case prop.Name == "bulwark:layer":
					pkg.Layer = prop.Value
				case prop.Name == "bulwark:package:sourceName":
					if pkg.Source == nil {
						pkg.Source = &SourcePackage{Version: c.Version}
					}
					pkg.Source.Name = prop.Value
				case prop.Name == "bulwark:package:sourceVersion":
					if pkg.Source == nil {
						pkg.Source = &SourcePackage{}
					}
					pkg.Source.Version = prop.Value
				case strings.HasPrefix(prop.Name, "bulwark:location:") && strings.HasSuffix(prop.Name, ":path"):
					pkg.Locations = append(pkg.Locations, Location{Path: prop.Value})
				}
			}
		}
		s.Packages = append(s.Packages, pkg)
	}
	return s
}
