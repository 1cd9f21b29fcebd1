package secrets

import (
	"crypto/sha256"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// scanConfig scans the ENV values and the history (CreatedBy) of an image
// config with the content rules that read the config and with envRule.
func scanConfig(cfg *v1.ConfigFile) []Finding {
	var m matcher
	var out []Finding
	seen := map[[sha256.Size]byte]bool{} // ENV is one path: report a secret once
	for i, kv := range cfg.Config.Env {
		for _, h := range configHits(&m, kv, []assignment{envAssignment(kv)}) {
			if !seen[h.fp] {
				seen[h.fp] = true
				out = append(out, configFinding(h, "ENV", i+1))
			}
		}
	}
	for i, h := range cfg.History {
		for _, hh := range configHits(&m, h.CreatedBy, buildAssignments(h.CreatedBy)) {
			out = append(out, configFinding(hh, fmt.Sprintf("history[%d]", i), hh.line))
		}
	}
	return out
}

func configFinding(h hit, path string, line int) Finding {
	return Finding{
		Rule:        h.rule.ID,
		Description: h.rule.Description,
		Severity:    h.rule.Severity,
		Path:        path,
		LayerIndex:  -1,
		Line:        line,
		Redacted:    h.redacted,
	}
}

// configHits runs the content rules over s, then envRule over the
// assignments whose value no content rule claimed.
func configHits(m *matcher, s string, as []assignment) []hit {
	text := []byte(s)
	hits := m.scan(text, func(r *Rule) bool { return r.Config })
	taken := len(hits)
	for _, a := range as {
		if a.value.start < 0 || !secretName(a.name.s) {
			continue
		}
		if e := a.value.end - 1; e > a.value.start && (s[a.value.start] == '"' || s[a.value.start] == '\'') && s[e] == s[a.value.start] {
			a.value = span{a.value.start + 1, e}
		}
		v := s[a.value.start:a.value.end]
		if !secretValue(v) {
			continue
		}
		claimed := false
		for _, h := range hits[:taken] {
			if h.start < a.value.end && a.value.start < h.end {
				claimed = true
			}
		}
		if claimed {
			continue
		}
		hits = append(hits, hit{
			rule: envRule, start: a.value.start, end: a.value.end,
			line: m.line(text, a.name.start), redacted: redact(v),
			fp: sha256.Sum256([]byte(envRule.ID + "\x00" + v)),
		})
	}
	return dedup(hits)
}

// assignment is NAME=VALUE inside a config string, as offsets.
type assignment struct {
	name  nameSpan
	value span // start -1: no value
}

type nameSpan struct {
	start int
	s     string
}

// envAssignment splits an ENV entry.
func envAssignment(kv string) assignment {
	k, _, ok := strings.Cut(kv, "=")
	if !ok {
		return assignment{value: span{-1, -1}}
	}
	return assignment{name: nameSpan{0, k}, value: span{len(k) + 1, len(kv)}}
}

// buildAssignments finds the variables a history entry sets: every
// NAME=VALUE of an ENV or ARG instruction, and the build arguments that
// BuildKit and the classic builder record before a RUN command
// ("RUN |2 A=1 B=2 /bin/sh -c ...").
func buildAssignments(createdBy string) []assignment {
	fields := fieldsIndex(createdBy)
	i := 0
	word := func(w string) bool {
		if i < len(fields) && createdBy[fields[i].start:fields[i].end] == w {
			i++
			return true
		}
		return false
	}
	if word("/bin/sh") && word("-c") {
		word("#(nop)")
	}
	limit := 0
	switch {
	case word("ENV"), word("ARG"):
		limit = len(fields)
	default:
		word("RUN")
		if i < len(fields) {
			f := createdBy[fields[i].start:fields[i].end]
			var n int
			if _, err := fmt.Sscanf(f, "|%d", &n); err == nil && n > 0 && fmt.Sprintf("|%d", n) == f {
				i++
				limit = min(i+n, len(fields))
			}
		}
	}
	var out []assignment
	for ; i < limit; i++ {
		f := fields[i]
		tok := createdBy[f.start:f.end]
		k, _, ok := strings.Cut(tok, "=")
		if !ok || !validName(k) {
			continue
		}
		out = append(out, assignment{name: nameSpan{f.start, k}, value: span{f.start + len(k) + 1, f.end}})
	}
	return out
}

// fieldsIndex is strings.Fields as offsets.
func fieldsIndex(s string) []span {
	var out []span
	start := -1
	for i := 0; i <= len(s); i++ {
		space := i == len(s) || s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'
		switch {
		case space && start >= 0:
			out = append(out, span{start, i})
			start = -1
		case !space && start < 0:
			start = i
		}
	}
	return out
}

func validName(k string) bool {
	if k == "" || (k[0] >= '0' && k[0] <= '9') {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// notSecretSuffixes mark names that hold where a secret is, or a setting
// about it, rather than the secret (PASSWORD_FILE, AWS_ACCESS_KEY_ID,
// TOKEN_TTL).
var notSecretSuffixes = []string{
	"_FILE", "_PATH", "_DIR", "_ID", "_NAME", "_USER", "_USERNAME", "_URL", "_URI", "_HOST", "_PORT",
	"_ENABLED", "_ENABLE", "_DISABLED", "_LENGTH", "_LEN", "_SIZE", "_TTL", "_TIMEOUT", "_EXPIRY", "_EXPIRES",
	"_SECONDS", "_MINUTES", "_HOURS", "_DAYS", "_LIMIT", "_MIN", "_MAX", "_COUNT", "_TYPE", "_HEADER",
	"_MODE", "_POLICY", "_VERSION", "_REGION", "_ENDPOINT", "_FORMAT", "_PROVIDER", "_LOCATION", "_PROMPT",
}

// secretName reports whether a variable name marks a secret: one of
// envRule's keywords ends a part of the name (PGPASSWORD, DB_PASSWORD_HASHED,
// but not TOKENIZERS_PARALLELISM), and the name does not end in a setting's
// suffix.
func secretName(name string) bool {
	for _, s := range notSecretSuffixes {
		if strings.HasSuffix(strings.ToUpper(name), s) {
			return false
		}
	}
	k := strings.ToLower(name)
	for _, w := range envRule.Keywords {
		for off := 0; ; {
			i := strings.Index(k[off:], w)
			if i < 0 {
				break
			}
			end := off + i + len(w)
			if end == len(k) || k[end] == '_' {
				return true
			}
			off += i + 1
		}
	}
	return false
}

// secretValue rejects empty values, placeholders, references ($VAR, paths)
// and short numbers (ports, timeouts).
func secretValue(v string) bool {
	if placeholder(v) {
		return false
	}
	digits := true
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			digits = false
		}
	}
	return !(digits && len(v) < 8)
}
