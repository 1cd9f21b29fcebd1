package osv

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Record is one OSV advisory.
type Record struct {
	SchemaVersion    string          `json:"schema_version,omitempty"`
	ID               string          `json:"id"`
	Modified         string          `json:"modified"`
	Published        string          `json:"published,omitempty"`
	Withdrawn        string          `json:"withdrawn,omitempty"`
	Aliases          []string        `json:"aliases,omitempty"`
	Related          []string        `json:"related,omitempty"`
	Upstream         []string        `json:"upstream,omitempty"`
	Summary          string          `json:"summary,omitempty"`
	Details          string          `json:"details,omitempty"`
	Severity         []Severity      `json:"severity,omitempty"`
	Affected         []Affected      `json:"affected,omitempty"`
	References       []Reference     `json:"references,omitempty"`
	DatabaseSpecific json.RawMessage `json:"database_specific,omitempty"`
}

// Severity is a scored severity, such as a CVSS vector.
type Severity struct {
	Type  string `json:"type"` // CVSS_V2, CVSS_V3, CVSS_V4, Ubuntu
	Score string `json:"score"`
}

// Affected names one package and the versions of it that are affected.
type Affected struct {
	Package           Package         `json:"package"`
	Severity          []Severity      `json:"severity,omitempty"`
	Ranges            []Range         `json:"ranges,omitempty"`
	Versions          []string        `json:"versions,omitempty"`
	EcosystemSpecific json.RawMessage `json:"ecosystem_specific,omitempty"`
	DatabaseSpecific  json.RawMessage `json:"database_specific,omitempty"`
}

// Package identifies a package within an ecosystem.
type Package struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	PURL      string `json:"purl,omitempty"`
}

// Range types.
const (
	RangeSemver    = "SEMVER"
	RangeEcosystem = "ECOSYSTEM"
	RangeGit       = "GIT"
)

// Range is a sequence of events over one version ordering.
type Range struct {
	Type   string  `json:"type"`
	Repo   string  `json:"repo,omitempty"`
	Events []Event `json:"events"`
}

// Event is one point of a range; exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// Reference is a link about the advisory.
type Reference struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// Parse decodes and checks one record. A record without an id, without a
// parseable modified time, or with an affected package that names no
// ecosystem and package, or a range with no events, is an error.
func Parse(data []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decoding OSV JSON: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks the fields matching depends on.
func (r *Record) Validate() error {
	if strings.TrimSpace(r.ID) == "" {
		return errors.New("record has no id")
	}
	if _, err := ParseTime(r.Modified); err != nil {
		return fmt.Errorf("%s: modified: %w", r.ID, err)
	}
	if r.Withdrawn != "" {
		if _, err := ParseTime(r.Withdrawn); err != nil {
			return fmt.Errorf("%s: withdrawn: %w", r.ID, err)
		}
	}
	for i, a := range r.Affected {
		if a.Package.Ecosystem == "" || a.Package.Name == "" {
			return fmt.Errorf("%s: affected[%d]: package has no ecosystem or name", r.ID, i)
		}
		for j, rg := range a.Ranges {
			if len(rg.Events) == 0 {
				return fmt.Errorf("%s: affected[%d].ranges[%d]: no events", r.ID, i, j)
			}
			switch rg.Type {
			case RangeSemver, RangeEcosystem, RangeGit:
			default:
				return fmt.Errorf("%s: affected[%d].ranges[%d]: unknown range type %q", r.ID, i, j, rg.Type)
			}
		}
	}
	return nil
}

// ModifiedTime returns the parsed modified time (zero when invalid).
func (r *Record) ModifiedTime() time.Time {
	t, _ := ParseTime(r.Modified)
	return t
}

// IsWithdrawn reports whether the record was withdrawn.
func (r *Record) IsWithdrawn() bool { return r.Withdrawn != "" }

// ParseTime parses an OSV timestamp (RFC 3339, UTC, optional fraction).
func ParseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not an RFC 3339 time: %q", s)
}
