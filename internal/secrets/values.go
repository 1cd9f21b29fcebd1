package secrets

import (
	"math"
	"strings"
	"unicode/utf8"
)

// maxRedacted bounds the length of a redacted secret (a JWT can run to
// kilobytes).
const maxRedacted = 64

// redact keeps the first four characters of a secret (fewer when the secret
// is shorter than 16 characters: a quarter of it, rounded down) and replaces
// every other character with '*', up to maxRedacted characters in all. Kept
// characters that are not printable ASCII are replaced too, so the result is
// never longer than s.
func redact(s string) string {
	keep := min(4, utf8.RuneCountInString(s)/4)
	var b strings.Builder
	i := 0
	for _, r := range s {
		if i == maxRedacted {
			break
		}
		if i < keep && r > ' ' && r < 0x7f {
			b.WriteRune(r)
		} else {
			b.WriteByte('*')
		}
		i++
	}
	return b.String()
}

// placeholderExact are values that stand for a secret rather than being one.
var placeholderExact = map[string]bool{
	"pass": true, "secret": true, "none": true, "null": true, "nil": true, "true": true, "false": true,
	"empty": true, "test": true, "testing": true, "default": true, "string": true, "required": true,
	"optional": true, "undefined": true, "unset": true, "hidden": true, "masked": true, "token": true,
	// well-known defaults shipped in packages' own configuration files
	"pass:insta": true, // OpenSSL's openssl.cnf, CMP demo server
	"guest":      true, // RabbitMQ
}

var placeholderPrefixes = []string{
	"$", "/", "./", "../", "~/", "!", "file:", "env:", "vault:", "arn:", "secretref:", "enc(", "keyring:",
}

var placeholderParts = []string{
	"changeme", "change_me", "change-me", "changeit", "example", "placeholder", "sample", "dummy",
	"redacted", "password", "passwd", "secret", "xxx", "***", "...", "your_", "your-", "yourpass", "yourtoken",
	"replace", "insert", "<", ">", "${", "{{", "$(", "%(",
}

// placeholder reports whether v is a stand-in (changeme, ${TOKEN}, <secret>,
// xxxxxxxx, YOUR_TOKEN), a reference (a path, $VAR, vault:...), a
// well-known default or too uniform to be a secret.
func placeholder(v string) bool {
	l := strings.ToLower(strings.TrimSpace(v))
	if l == "" || placeholderExact[l] {
		return true
	}
	for _, p := range placeholderPrefixes {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	for _, p := range placeholderParts {
		if strings.Contains(l, p) {
			return true
		}
	}
	return distinct(l) < 3 || identifier(v)
}

// identifier reports a value made of letters joined by '_' or '.', such as
// YOUR_API_KEY or HEADER.PAYLOAD.SIGNATURE: a name, not a secret.
func identifier(v string) bool {
	sep := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '_' || c == '.':
			sep = true
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		default:
			return false
		}
	}
	return sep
}

// random reports whether s has at least bits of Shannon entropy per
// character: machine-made tokens have 4.5 or more, placeholders such as
// "xxxx..." or "abcabc..." far less.
func random(s string, bits float64) bool {
	return entropy(s) >= bits
}

func entropy(s string) float64 {
	if s == "" {
		return 0
	}
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	n := float64(len(s))
	var h float64
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

func distinct(s string) int {
	var seen [256]bool
	n := 0
	for i := 0; i < len(s); i++ {
		if !seen[s[i]] {
			seen[s[i]] = true
			n++
		}
	}
	return n
}

// asciiLower lowercases ASCII letters only, so offsets in the result are
// offsets in src.
func asciiLower(dst, src []byte) []byte {
	dst = append(dst[:0], src...)
	for i, c := range dst {
		if 'A' <= c && c <= 'Z' {
			dst[i] = c + ('a' - 'A')
		}
	}
	return dst
}
