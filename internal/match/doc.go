// Package match turns an inventory and OSV advisories into findings.
//
// For each package it asks the advisory source for the records of its OSV
// ecosystem and name (distribution packages by their source package and
// release: a bookworm image only ever sees "Debian:12" records), decides
// whether the installed version is affected (OSV ranges with introduced,
// fixed, last_affected and limit events, and explicit version lists, compared
// with each ecosystem's own ordering from osv-scalibr's semantic package),
// skips withdrawn records, and merges records that name the same
// vulnerability (id, aliases, upstream) into one finding per package.
//
// Severity comes from CVSS v3.x / v4.0 vectors (github.com/pandatix/go-cvss),
// else from the database's own rating (GitHub's "severity", Debian's urgency).
// Findings that an OpenVEX statement marks not_affected or fixed are moved to
// Suppressed with the statement, never dropped.
package match
