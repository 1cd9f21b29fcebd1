// Package sbom is Bulwark's inventory model (SBOM, Package, Location, File)
// and its encoders: a table for people, Bulwark's own JSON, CycloneDX 1.6
// JSON (github.com/CycloneDX/cyclonedx-go) and SPDX 2.3 JSON
// (github.com/spdx/tools-golang). The standard formats are written through
// their official libraries so that they stay valid against their schemas.
package sbom

//go:generate go run ./internal/genspdx
