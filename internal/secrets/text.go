package secrets

// ScanText finds secrets in one text that is not a file of an image (an
// HTTP response, a log line), with the rules that read every file: rules
// bound to file names (e.g. .npmrc, docker config.json) do not run. source
// names the text in the findings' Path; LayerIndex is -1 and Layer "". Safe
// for concurrent use.
func ScanText(source string, text []byte) []Finding {
	var m matcher
	hits := m.scan(text, func(r *Rule) bool { return r.paths == nil })
	out := make([]Finding, 0, len(hits))
	for _, h := range hits {
		out = append(out, Finding{
			Rule:        h.rule.ID,
			Description: h.rule.Description,
			Severity:    h.rule.Severity,
			Path:        source,
			LayerIndex:  -1,
			Line:        h.line,
			Redacted:    h.redacted,
		})
	}
	return out
}
