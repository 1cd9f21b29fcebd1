package catalog

import (
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// purl builds a package URL; qualifiers are key, value pairs (empty values
// are left out).
func purl(typ, namespace, name, version string, qualifiers ...string) string {
	var q packageurl.Qualifiers
	for i := 0; i+1 < len(qualifiers); i += 2 {
		if qualifiers[i+1] != "" {
			q = append(q, packageurl.Qualifier{Key: qualifiers[i], Value: qualifiers[i+1]})
		}
	}
	return packageurl.NewPackageURL(typ, namespace, name, version, q, "").ToString()
}

// distroQualifier is the purl distro qualifier, "debian-12".
func distroQualifier(d *sbom.Distro) string {
	if d == nil || d.ID == "" {
		return ""
	}
	if d.VersionID == "" {
		return d.ID
	}
	return d.ID + "-" + d.VersionID
}

// distroNamespace is the purl namespace of an OS package: the distro ID.
func distroNamespace(d *sbom.Distro, fallback string) string {
	if d == nil || d.ID == "" {
		return fallback
	}
	return strings.ToLower(d.ID)
}
