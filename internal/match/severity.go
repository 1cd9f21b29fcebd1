package match

import (
	"encoding/json"
	"strings"

	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"

	"github.com/bulwark-sec/bulwark/internal/osv"
)

// Severity is a finding's rating. Its order is its rank.
type Severity int

// Severities, lowest first.
const (
	SeverityUnknown Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = []string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

func (s Severity) String() string { return severityNames[s] }

// MarshalText writes the name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, ok := ParseSeverity(string(b))
	if !ok {
		return &json.UnsupportedValueError{Str: string(b)}
	}
	*s = v
	return nil
}

// ParseSeverity reads a rating name, case-insensitive; GitHub's "moderate"
// is medium, Debian's "unimportant" and "not yet assigned" are low/unknown.
func ParseSeverity(s string) (Severity, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "critical":
		return SeverityCritical, true
	case "high":
		return SeverityHigh, true
	case "medium", "moderate":
		return SeverityMedium, true
	case "low", "unimportant", "negligible":
		return SeverityLow, true
	case "unknown", "not yet assigned", "":
		return SeverityUnknown, true
	}
	return SeverityUnknown, false
}

// fromScore rates a CVSS base score as CVSS v3 and v4 do.
func fromScore(score float64) Severity {
	switch {
	case score >= 9.0:
		return SeverityCritical
	case score >= 7.0:
		return SeverityHigh
	case score >= 4.0:
		return SeverityMedium
	case score > 0:
		return SeverityLow
	}
	return SeverityUnknown
}

// CVSS is a parsed vector and its base score.
type CVSS struct {
	Version string  `json:"version"`
	Vector  string  `json:"vector"`
	Score   float64 `json:"score"`
}

// parseCVSS scores a CVSS v3.0, v3.1 or v4.0 vector; ok is false otherwise.
func parseCVSS(vector string) (CVSS, bool) {
	switch {
	case strings.HasPrefix(vector, "CVSS:3.1/"):
		if c, err := gocvss31.ParseVector(vector); err == nil {
			return CVSS{Version: "3.1", Vector: vector, Score: c.BaseScore()}, true
		}
	case strings.HasPrefix(vector, "CVSS:3.0/"):
		if c, err := gocvss30.ParseVector(vector); err == nil {
			return CVSS{Version: "3.0", Vector: vector, Score: c.BaseScore()}, true
		}
	case strings.HasPrefix(vector, "CVSS:4.0/"):
		if c, err := gocvss40.ParseVector(vector); err == nil {
			return CVSS{Version: "4.0", Vector: vector, Score: c.Score()}, true
		}
	}
	return CVSS{}, false
}

// rate finds the severity of one record for one affected entry: the highest
// CVSS v3/v4 score among the record's and the entry's vectors, else the
// database's own rating.
func rate(r *osv.Record, a osv.Affected) (Severity, *CVSS) {
	var best *CVSS
	for _, s := range append(append([]osv.Severity{}, r.Severity...), a.Severity...) {
		if c, ok := parseCVSS(s.Score); ok && (best == nil || c.Score > best.Score) {
			best = &c
		}
	}
	if best != nil {
		return fromScore(best.Score), best
	}
	for _, raw := range []json.RawMessage{a.EcosystemSpecific, a.DatabaseSpecific, r.DatabaseSpecific} {
		var ds struct {
			Severity string `json:"severity"`
			Urgency  string `json:"urgency"`
		}
		if len(raw) == 0 || json.Unmarshal(raw, &ds) != nil {
			continue
		}
		for _, v := range []string{ds.Severity, ds.Urgency} {
			if sev, ok := ParseSeverity(v); ok && sev != SeverityUnknown {
				return sev, nil
			}
		}
	}
	return SeverityUnknown, nil
}
