package sbom

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// ToolName and ToolVersion are written into generated documents.
var (
	ToolName    = "bulwark"
	ToolVersion = "dev"
)

// CycloneDX converts s into a CycloneDX 1.6 BOM. Components are the
// packages; the image is metadata.component; the distro is an
// operating-system component. Layer and locations travel as properties in
// the "bulwark:" namespace.
func CycloneDX(s *SBOM) *cdx.BOM {
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + documentUUID(s)
	bom.Metadata = &cdx.Metadata{
		Timestamp: s.Created.Format("2006-01-02T15:04:05Z"),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: ToolName, Version: ToolVersion,
		}}},
		Component:  imageComponent(s),
		Properties: inventoryProperties(s),
	}
	comps := make([]cdx.Component, 0, len(s.Packages)+1)
	refs := make([]string, 0, len(s.Packages)+1)
	if d := s.Distro; d != nil {
		ref := "os:" + d.ID + "@" + d.VersionID
		comps = append(comps, cdx.Component{
			BOMRef: ref, Type: cdx.ComponentTypeOS, Name: d.ID, Version: d.VersionID, Description: d.PrettyName,
		})
		refs = append(refs, ref)
	}
	for i, p := range s.Packages {
		c := cdx.Component{
			BOMRef:     packageRef(i, p),
			Type:       cdx.ComponentTypeLibrary,
			Name:       p.Name,
			Version:    p.Version,
			PackageURL: p.PURL,
		}
		if lics := cdxLicenses(p.Licenses); lics != nil {
			c.Licenses = lics
		}
		props := []cdx.Property{{Name: "bulwark:package:type", Value: p.Type}, {Name: "bulwark:package:foundBy", Value: p.Cataloger}}
		if p.Layer != "" {
			props = append(props, cdx.Property{Name: "bulwark:layer", Value: p.Layer})
		}
		if p.Source != nil {
			props = append(props,
				cdx.Property{Name: "bulwark:package:sourceName", Value: p.Source.Name},
				cdx.Property{Name: "bulwark:package:sourceVersion", Value: p.Source.Version})
		}
		for j, l := range p.Locations {
			props = append(props, cdx.Property{Name: fmt.Sprintf("bulwark:location:%d:path", j), Value: l.Path})
			if l.Layer != "" {
				props = append(props, cdx.Property{Name: fmt.Sprintf("bulwark:location:%d:layer", j), Value: l.Layer})
			}
		}
		c.Properties = &props
		comps = append(comps, c)
		refs = append(refs, c.BOMRef)
	}
	comps = append(comps, cdxFiles(s)...)
	bom.Components = &comps
	bom.Dependencies = &[]cdx.Dependency{{Ref: bom.Metadata.Component.BOMRef, Dependencies: &refs}}
	return bom
}

// inventoryProperties says whether the inventory is complete and, when it
// is not, names each record that could not be read.
func inventoryProperties(s *SBOM) *[]cdx.Property {
	props := []cdx.Property{{Name: "bulwark:inventory:complete", Value: strconv.FormatBool(!s.Incomplete)}}
	for i, p := range s.Problems {
		props = append(props, cdx.Property{Name: fmt.Sprintf("bulwark:inventory:problem:%d", i), Value: p.String()})
	}
	return &props
}

func imageComponent(s *SBOM) *cdx.Component {
	c := &cdx.Component{
		BOMRef:  "image:" + s.Source.Name,
		Type:    cdx.ComponentTypeContainer,
		Name:    s.Source.Name,
		Version: s.Source.Digest,
	}
	var props []cdx.Property
	for _, kv := range [][2]string{
		{"bulwark:image:kind", s.Source.Kind},
		{"bulwark:image:configDigest", s.Source.ConfigID},
		{"bulwark:image:platform", s.Source.Platform},
		{"bulwark:image:created", s.Source.Created},
	} {
		if kv[1] != "" {
			props = append(props, cdx.Property{Name: kv[0], Value: kv[1]})
		}
	}
	for _, l := range s.Source.Layers {
		props = append(props, cdx.Property{Name: fmt.Sprintf("bulwark:image:layer:%d:diffID", l.Index), Value: l.DiffID})
	}
	if len(props) > 0 {
		c.Properties = &props
	}
	return c
}

// cdxLicenses writes known SPDX identifiers as license.id (the schema checks
// them against the SPDX list) and anything else as license.name.
func cdxLicenses(lics []string) *cdx.Licenses {
	if len(lics) == 0 {
		return nil
	}
	out := make(cdx.Licenses, 0, len(lics))
	for _, l := range lics {
		if spdxIDs[l] {
			out = append(out, cdx.LicenseChoice{License: &cdx.License{ID: l}})
		} else {
			out = append(out, cdx.LicenseChoice{License: &cdx.License{Name: l}})
		}
	}
	return &out
}

// packageRef is a stable, unique reference for package i.
func packageRef(i int, p Package) string {
	loc := ""
	if len(p.Locations) > 0 {
		loc = p.Locations[0].Path
	}
	h := sha256.Sum256([]byte(fmt.Sprint(p.Type, "\x00", p.Name, "\x00", p.Version, "\x00", loc, "\x00", i)))
	return "pkg:" + hex.EncodeToString(h[:8])
}

// documentUUID derives a UUID from the image and the creation time, so two
// runs at the same second give the same document.
func documentUUID(s *SBOM) string {
	return StableUUID(s.Source.Name, s.Source.Digest, s.Created.String())
}

// StableUUID derives a UUID (with version 5 bits) from parts: the same parts
// always give the same UUID.
func StableUUID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	h[6] = (h[6] & 0x0f) | 0x50
	h[8] = (h[8] & 0x3f) | 0x80
	x := hex.EncodeToString(h[:16])
	return strings.Join([]string{x[0:8], x[8:12], x[12:16], x[16:20], x[20:32]}, "-")
}

// EncodeCycloneDX writes s as CycloneDX 1.6 JSON.
func EncodeCycloneDX(w io.Writer, s *SBOM) error {
	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	enc.SetEscapeHTML(false)
	if err := enc.EncodeVersion(CycloneDX(s), cdx.SpecVersion1_6); err != nil {
		return fmt.Errorf("encoding CycloneDX: %w", err)
	}
	return nil
}
