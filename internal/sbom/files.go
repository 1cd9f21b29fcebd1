package sbom

import (
	"fmt"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

// hashedFiles are the file table's entries that carry a content digest
// (executables, ELF files, scripts, shared libraries; every file with
// --file-digests all): the ones CycloneDX and SPDX list as files.
func hashedFiles(s *SBOM) []File {
	var out []File
	for _, f := range s.Files {
		if strings.HasPrefix(f.Digest, "sha256:") {
			out = append(out, f)
		}
	}
	return out
}

// cdxFiles are the hashed files as CycloneDX file components.
func cdxFiles(s *SBOM) []cdx.Component {
	var out []cdx.Component
	for _, f := range hashedFiles(s) {
		props := []cdx.Property{{Name: "bulwark:file:mode", Value: f.Mode}}
		if f.Layer != "" {
			props = append(props, cdx.Property{Name: "bulwark:layer", Value: f.Layer})
		}
		out = append(out, cdx.Component{
			BOMRef:     "file:" + f.Path,
			Type:       cdx.ComponentTypeFile,
			Name:       f.Path,
			Hashes:     &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: strings.TrimPrefix(f.Digest, "sha256:")}},
			Properties: &props,
		})
	}
	return out
}

// spdxFiles are the hashed files as SPDX files the image CONTAINS.
func spdxFiles(s *SBOM) ([]*spdx.File, []*spdx.Relationship) {
	var files []*spdx.File
	var rels []*spdx.Relationship
	for i, f := range hashedFiles(s) {
		id := common.ElementID(fmt.Sprintf("File-%d", i))
		files = append(files, &spdx.File{
			FileName:           "." + f.Path,
			FileSPDXIdentifier: id,
			Checksums:          []common.Checksum{{Algorithm: common.SHA256, Value: strings.TrimPrefix(f.Digest, "sha256:")}},
			LicenseConcluded:   "NOASSERTION",
			FileCopyrightText:  "NOASSERTION",
		})
		rels = append(rels, &spdx.Relationship{
			RefA:         common.MakeDocElementID("", "Image"),
			RefB:         common.MakeDocElementID("", string(id)),
			Relationship: "CONTAINS",
		})
	}
	return files, rels
}
