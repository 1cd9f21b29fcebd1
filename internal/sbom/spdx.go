package sbom

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

var spdxIDUnsafe = regexp.MustCompile(`[^a-zA-Z0-9.-]+`)

// SPDX converts s into an SPDX 2.3 document: the image is the described
// package and CONTAINS every other package. Licenses that are not on the SPDX
// list become LicenseRef-… with the original text as extracted info.
func SPDX(s *SBOM) *spdx.Document {
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      s.Source.Name,
		DocumentNamespace: "https://bulwark.invalid/spdx/" + documentUUID(s),
		CreationInfo: &spdx.CreationInfo{
			Created:  s.Created.Format("2006-01-02T15:04:05Z"),
			Creators: []common.Creator{{CreatorType: "Tool", Creator: ToolName + "-" + ToolVersion}},
		},
	}
	if s.Incomplete {
		var b strings.Builder
		fmt.Fprintf(&b, "bulwark:inventory:complete=false: %d records could not be read; their packages may be missing.", len(s.Problems))
		for _, p := range s.Problems {
			fmt.Fprintf(&b, "\n%s", p)
		}
		doc.DocumentComment = b.String()
	}
	root := &spdx.Package{
		PackageName:             s.Source.Name,
		PackageSPDXIdentifier:   "Image",
		PackageVersion:          s.Source.Digest,
		PackageDownloadLocation: "NOASSERTION",
		PrimaryPackagePurpose:   "CONTAINER",
		PackageLicenseConcluded: "NOASSERTION",
		PackageLicenseDeclared:  "NOASSERTION",
		PackageCopyrightText:    "NOASSERTION",
	}
	doc.Packages = append(doc.Packages, root)
	doc.Relationships = append(doc.Relationships, &spdx.Relationship{
		RefA:         common.MakeDocElementID("", "DOCUMENT"),
		RefB:         common.MakeDocElementID("", "Image"),
		Relationship: "DESCRIBES",
	})
	other := map[string]string{}
	for i, p := range s.Packages {
		id := common.ElementID(fmt.Sprintf("Package-%d-%s", i, strings.Trim(spdxIDUnsafe.ReplaceAllString(p.Type+"-"+p.Name, "-"), "-")))
		sp := &spdx.Package{
			PackageName:             p.Name,
			PackageSPDXIdentifier:   id,
			PackageVersion:          p.Version,
			PackageDownloadLocation: "NOASSERTION",
			PackageLicenseConcluded: "NOASSERTION",
			PackageLicenseDeclared:  spdxLicense(p.Licenses, other),
			PackageCopyrightText:    "NOASSERTION",
			PrimaryPackagePurpose:   "LIBRARY",
			PackageSourceInfo:       sourceInfo(p),
		}
		if p.PURL != "" {
			sp.PackageExternalReferences = []*spdx.PackageExternalReference{{
				Category: "PACKAGE-MANAGER", RefType: "purl", Locator: p.PURL,
			}}
		}
		doc.Packages = append(doc.Packages, sp)
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA:         common.MakeDocElementID("", "Image"),
			RefB:         common.MakeDocElementID("", string(id)),
			Relationship: "CONTAINS",
		})
	}
	files, rels := spdxFiles(s)
	doc.Files, doc.Relationships = files, append(doc.Relationships, rels...)
	refs := make([]string, 0, len(other))
	for ref := range other {
		refs = append(refs, ref)
	}
	slices.Sort(refs)
	for _, ref := range refs {
		doc.OtherLicenses = append(doc.OtherLicenses, &spdx.OtherLicense{
			LicenseIdentifier: ref, ExtractedText: other[ref], LicenseName: other[ref],
		})
	}
	return doc
}

func sourceInfo(p Package) string {
	var b strings.Builder
	fmt.Fprintf(&b, "found by %s in", p.Cataloger)
	for _, l := range p.Locations {
		fmt.Fprintf(&b, " %s", l.Path)
		if l.Layer != "" {
			fmt.Fprintf(&b, " (layer %s)", l.Layer)
		}
	}
	return b.String()
}

// spdxLicense joins a package's licenses with AND, turning each unknown name
// into a LicenseRef recorded in other.
func spdxLicense(lics []string, other map[string]string) string {
	if len(lics) == 0 {
		return "NOASSERTION"
	}
	parts := make([]string, 0, len(lics))
	for _, l := range lics {
		if spdxIDs[l] {
			parts = append(parts, l)
			continue
		}
		ref := "LicenseRef-" + strings.Trim(spdxIDUnsafe.ReplaceAllString(l, "-"), "-")
		other[ref] = l
		parts = append(parts, ref)
	}
	return strings.Join(parts, " AND ")
}

// EncodeSPDX writes s as SPDX 2.3 JSON.
func EncodeSPDX(w io.Writer, s *SBOM) error {
	if err := spdxjson.Write(SPDX(s), w, spdxjson.Indent("  "), spdxjson.EscapeHTML(false)); err != nil {
		return fmt.Errorf("encoding SPDX: %w", err)
	}
	return nil
}
