package sbom

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestHashedFilesInCycloneDXAndSPDX: files with a content digest become
// CycloneDX file components with a SHA-256 hash and SPDX files with a
// SHA256 checksum; files without one are not listed.
func TestHashedFilesInCycloneDXAndSPDX(t *testing.T) {
	digest := strings.Repeat("ab", 32)
	s := &SBOM{Schema: SchemaVersion, Created: time.Unix(0, 0).UTC(), Source: Source{Name: "example.com/app:1", Kind: "registry"},
		Files: []File{
			{Path: "/usr/bin/tool", Type: "file", Mode: "0755", Size: 10, Layer: "sha256:l0", Digest: "sha256:" + digest},
			{Path: "/etc/motd", Type: "file", Mode: "0644", Size: 3, Layer: "sha256:l0"},
		}}
	var cdx, spdx bytes.Buffer
	if err := Encode(&cdx, s, "cyclonedx"); err != nil {
		t.Fatal(err)
	}
	if err := Encode(&spdx, s, "spdx"); err != nil {
		t.Fatal(err)
	}
	var c struct {
		Components []struct {
			Type, Name string
			Hashes     []struct{ Alg, Content string }
		}
	}
	if err := json.Unmarshal(cdx.Bytes(), &c); err != nil {
		t.Fatal(err)
	}
	var files int
	for _, comp := range c.Components {
		if comp.Type == "file" {
			files++
			if comp.Name != "/usr/bin/tool" || len(comp.Hashes) != 1 || comp.Hashes[0].Alg != "SHA-256" || comp.Hashes[0].Content != digest {
				t.Errorf("file component %+v", comp)
			}
		}
	}
	if files != 1 {
		t.Errorf("%d file components, want 1:\n%s", files, cdx.String())
	}
	var d struct {
		Files []struct {
			FileName  string
			Checksums []struct{ Algorithm, ChecksumValue string }
		}
	}
	if err := json.Unmarshal(spdx.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Files) != 1 || d.Files[0].FileName != "./usr/bin/tool" || d.Files[0].Checksums[0].ChecksumValue != digest {
		t.Errorf("spdx files %+v", d.Files)
	}
}
