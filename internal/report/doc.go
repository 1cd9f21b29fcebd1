// Package report writes the result of a vulnerability scan: a table grouped
// by package for people, Bulwark's JSON, SARIF 2.1.0 for code-scanning UIs
// (github.com/owenrumney/go-sarif), and CycloneDX 1.6 with a vulnerabilities
// section (github.com/CycloneDX/cyclonedx-go).
package report
