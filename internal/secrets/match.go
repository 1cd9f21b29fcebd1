package secrets

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"sort"
)

// hit is one secret found in one text.
type hit struct {
	rule *Rule
	// start and end delimit the secret in the text; line is the 1-based line
	// where the whole match starts.
	start, end int
	line       int
	redacted   string
	// fp fingerprints rule and secret, to report a secret once per file.
	fp [sha256.Size]byte
}

// matcher scans texts; one per goroutine, its buffers are reused.
type matcher struct {
	lower   []byte
	windows []span
	newline []int // offsets of '\n' in the current text, built on demand
	built   bool
}

type span struct{ start, end int }

// scan finds the secrets in text for the rules that apply (keep reports
// whether a rule reads this text). Where two rules match overlapping bytes,
// the earlier rule in the table wins; a secret repeated in the text is
// reported once, at its first line.
func (m *matcher) scan(text []byte, keep func(*Rule) bool) []hit {
	m.lower = asciiLower(m.lower, text)
	m.built = false
	var hits []hit
	var taken []span // secrets already reported, sorted by start
	for _, r := range contentRules {
		if !keep(r) || !m.hasKeyword(r) {
			continue
		}
		if r.requires != nil && !r.requires.Match(text) {
			continue
		}
		if r.multiline {
			hits = m.match(hits, &taken, r, text, span{0, len(text)})
			continue
		}
		for _, w := range m.keywordLines(r) {
			hits = m.match(hits, &taken, r, text, w)
		}
	}
	return dedup(hits)
}

func (m *matcher) hasKeyword(r *Rule) bool {
	for _, k := range r.keywords {
		if bytes.Contains(m.lower, k) {
			return true
		}
	}
	return false
}

// keywordLines returns the lines (without their newline) that hold one of
// r's keywords, in order, each once.
func (m *matcher) keywordLines(r *Rule) []span {
	m.windows = m.windows[:0]
	for _, kw := range r.keywords {
		for off := 0; off < len(m.lower); {
			i := bytes.Index(m.lower[off:], kw)
			if i < 0 {
				break
			}
			i += off
			start := bytes.LastIndexByte(m.lower[:i], '\n') + 1
			end := len(m.lower)
			if j := bytes.IndexByte(m.lower[i:], '\n'); j >= 0 {
				end = i + j
			}
			m.windows = append(m.windows, span{start, end})
			off = end + 1
		}
	}
	if len(r.Keywords) > 1 {
		slices.SortFunc(m.windows, func(a, b span) int { return a.start - b.start })
		m.windows = slices.Compact(m.windows)
	}
	return m.windows
}

// match runs r over text[w.start:w.end] and appends the accepted hits.
func (m *matcher) match(hits []hit, taken *[]span, r *Rule, text []byte, w span) []hit {
	for _, loc := range r.re.FindAllSubmatchIndex(text[w.start:w.end], -1) {
		// the secret is the last capturing group that took part
		s, e := -1, -1
		for g := len(loc)/2 - 1; g >= 1; g-- {
			if loc[2*g] >= 0 {
				s, e = w.start+loc[2*g], w.start+loc[2*g+1]
				break
			}
		}
		if s < 0 {
			continue
		}
		ms, me := w.start+loc[0], w.start+loc[1]
		if r.skipComments && commented(text, r.multiline, w.start, ms) {
			continue
		}
		if r.valid != nil && !r.valid(string(text[ms:me]), string(text[s:e])) {
			continue
		}
		if overlaps(*taken, span{s, e}) {
			continue
		}
		i, _ := slices.BinarySearchFunc(*taken, s, func(a span, s int) int { return a.start - s })
		*taken = slices.Insert(*taken, i, span{s, e})
		h := sha256.New()
		h.Write([]byte(r.ID))
		h.Write([]byte{0})
		h.Write(text[s:e])
		var fp [sha256.Size]byte
		h.Sum(fp[:0])
		hits = append(hits, hit{rule: r, start: s, end: e, line: m.line(text, ms), redacted: redact(string(text[s:e])), fp: fp})
	}
	return hits
}

// overlaps reports whether sp overlaps any span of the sorted list.
func overlaps(taken []span, sp span) bool {
	i := sort.Search(len(taken), func(i int) bool { return taken[i].end > sp.start })
	return i < len(taken) && taken[i].start < sp.end
}

// commented reports whether the line holding offset i starts with a
// comment marker (#, ;, //). A line rule's window starts the line.
func commented(text []byte, multiline bool, windowStart, i int) bool {
	start := windowStart
	if multiline {
		start = bytes.LastIndexByte(text[:i], '\n') + 1
	}
	l := bytes.TrimLeft(text[start:i+1], " \t")
	return len(l) > 0 && (l[0] == '#' || l[0] == ';' || bytes.HasPrefix(l, []byte("//")))
}

// line returns the 1-based line of offset i.
func (m *matcher) line(text []byte, i int) int {
	if !m.built {
		m.newline = m.newline[:0]
		for off := 0; ; {
			j := bytes.IndexByte(text[off:], '\n')
			if j < 0 {
				break
			}
			m.newline = append(m.newline, off+j)
			off += j + 1
		}
		m.built = true
	}
	n, _ := slices.BinarySearch(m.newline, i)
	return n + 1
}

// dedup keeps the first hit of each (rule, secret), in line order.
func dedup(hits []hit) []hit {
	slices.SortStableFunc(hits, func(a, b hit) int { return a.line - b.line })
	seen := make(map[[sha256.Size]byte]bool, len(hits))
	out := hits[:0]
	for _, h := range hits {
		if !seen[h.fp] {
			seen[h.fp] = true
			out = append(out, h)
		}
	}
	return out
}
