package secrets

import (
	"encoding/base64"
	"encoding/json"
	"hash/crc32"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Severities of a finding.
const (
	Critical = "critical"
	High     = "high"
	Medium   = "medium"
)

// Rule is one built-in detector.
type Rule struct {
	ID          string
	Description string
	Severity    string
	// Keywords are lowercase; the rule runs only on text holding one of them
	// (compared ASCII case-insensitively), and, unless its matches may span
	// lines, only over the lines that hold one: every match of the pattern
	// must contain a keyword.
	Keywords []string
	// Files says which files the rule reads; empty means every file.
	Files string
	// Config reports whether the rule also reads ENV values and history.
	Config bool

	pattern  string
	re       *regexp.Regexp
	keywords [][]byte
	// multiline rules may match across lines, so they run over the whole
	// text instead of the lines that hold a keyword.
	multiline bool
	// requires must also match somewhere in the text.
	requires *regexp.Regexp
	// paths selects the files the rule reads; nil means every file.
	paths func(p string) bool
	// skipComments drops matches on lines that start with #, ; or //.
	skipComments bool
	// valid accepts or rejects a candidate: the whole match and the secret
	// (the last capturing group that took part in the match).
	valid func(match, secret string) bool
}

// contentRules are the rules over file contents, ENV values and history, in
// priority order: where two rules match overlapping bytes, the earlier one
// reports. envRule, for variable names, comes after all of them.
var contentRules = []*Rule{
	{
		ID:          "gcp-service-account",
		Description: "Google Cloud service account key (JSON with a private key)",
		Severity:    Critical,
		Keywords:    []string{`"private_key"`},
		Config:      true,
		requires:    regexp.MustCompile(`"type"\s*:\s*"service_account"`),
		pattern:     `"private_key"\s*:\s*"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:\\r)?(?:\\n)+([A-Za-z0-9+/]{40,})`,
		valid:       func(_, s string) bool { return random(s, 3.0) },
	},
	{
		ID:          "private-key",
		Description: "PEM private key (RSA, EC, DSA, OpenSSH, PKCS#8, encrypted, PGP) with a key body",
		Severity:    Critical,
		Keywords:    []string{"private key"},
		Config:      true,
		multiline:   true,
		// The BEGIN line, optional RFC 1421 headers (Proc-Type, DEK-Info,
		// PGP's Version), then at least 40 base64 characters of body.
		// Newlines may be real or escaped ("\n" in JSON and ENV values).
		pattern: `-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:\s|\\[rn])+(?:[A-Za-z][A-Za-z0-9-]*: [^\r\n\\]*(?:\s|\\[rn])+)*([A-Za-z0-9+/]{40,})`,
		valid:   func(_, s string) bool { return random(s, 3.0) },
	},
	{
		ID:          "aws-access-key-id",
		Description: "AWS access key ID (AKIA, ASIA, ABIA, ACCA)",
		Severity:    High,
		Keywords:    []string{"akia", "asia", "abia", "acca"},
		Config:      true,
		pattern:     `\b((?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b`,
		// AWS documentation's keys (AKIAIOSFODNN7EXAMPLE) are not secrets.
		valid: func(_, s string) bool { return !strings.HasSuffix(s, "EXAMPLE") },
	},
	{
		ID:          "aws-secret-access-key",
		Description: "AWS secret access key assigned to aws_secret_access_key or similar",
		Severity:    Critical,
		Keywords:    []string{"secret_access_key", "secretaccesskey", "secret-access-key", "secret.access.key"},
		Config:      true,
		pattern:     `(?i)(?:\b|_)secret[_.-]?access[_.-]?key["']?\s*(?:[:=]|=>)?\s*["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)`,
		valid: func(_, s string) bool {
			return !strings.Contains(s, "EXAMPLE") && random(s, 3.5)
		},
	},
	{
		ID:          "github-token",
		Description: "GitHub token (ghp_, gho_, ghu_, ghs_, ghr_ with a valid checksum; github_pat_)",
		Severity:    Critical,
		Keywords:    []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"},
		Config:      true,
		pattern:     `\b((?:ghp|gho|ghu|ghs)_[A-Za-z0-9]{36}|ghr_[A-Za-z0-9]{36}(?:[A-Za-z0-9]{40})?|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})\b`,
		valid:       githubToken,
	},
	{
		ID:          "gitlab-token",
		Description: "GitLab personal access token (glpat-)",
		Severity:    Critical,
		Keywords:    []string{"glpat-"},
		Config:      true,
		pattern:     `\b(glpat-[A-Za-z0-9_-]{20,})`,
		valid:       func(_, s string) bool { return random(s[6:], 3.0) },
	},
	{
		ID:          "slack-token",
		Description: "Slack token (xoxb-, xoxp-, xoxa-, xoxr-, xoxs-)",
		Severity:    High,
		Keywords:    []string{"xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-"},
		Config:      true,
		pattern:     `\b(xox[baprs]-[0-9]{6,}-[0-9A-Za-z]+(?:-[0-9A-Za-z]+)*)`,
		valid:       func(_, s string) bool { return len(s) >= 30 && random(s[5:], 3.0) },
	},
	{
		ID:          "slack-webhook",
		Description: "Slack incoming webhook URL",
		Severity:    High,
		Keywords:    []string{"hooks.slack.com"},
		Config:      true,
		pattern:     `https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/([A-Za-z0-9]{20,})`,
		valid:       func(_, s string) bool { return random(s, 3.0) },
	},
	{
		ID:          "stripe-live-key",
		Description: "Stripe live secret or restricted key (sk_live_, rk_live_)",
		Severity:    Critical,
		Keywords:    []string{"sk_live_", "rk_live_"},
		Config:      true,
		pattern:     `\b((?:sk|rk)_live_[0-9A-Za-z]{24,})\b`,
		valid:       func(_, s string) bool { return random(s[8:], 3.0) },
	},
	{
		ID:          "google-api-key",
		Description: "Google API key (AIza)",
		Severity:    High,
		Keywords:    []string{"aiza"},
		Config:      true,
		pattern:     `\b(AIza[0-9A-Za-z_-]{35})(?:[^0-9A-Za-z_-]|$)`,
		valid:       func(_, s string) bool { return random(s[4:], 3.0) },
	},
	{
		ID:          "npm-access-token",
		Description: "npm access token (npm_)",
		Severity:    Critical,
		Keywords:    []string{"npm_"},
		Config:      true,
		pattern:     `\b(npm_[A-Za-z0-9]{36})\b`,
		valid:       func(_, s string) bool { return random(s[4:], 3.0) },
	},
	{
		ID:          "npm-auth-token",
		Description: "npm registry credential in .npmrc (_authToken, _auth, _password)",
		Severity:    Critical,
		Keywords:    []string{"_auth", "_password"},
		Files:       ".npmrc, npmrc",
		Config:      true,
		paths:       func(p string) bool { b := path.Base(p); return b == ".npmrc" || b == "npmrc" },
		pattern:     `(?:_authToken|_auth|_password)\s*=\s*["']?([^\s"']+)`,
		valid:       func(_, s string) bool { return len(s) >= 8 && !placeholder(s) },
	},
	{
		ID:          "docker-config-auth",
		Description: "registry credential in a Docker or Podman auth file (\"auth\" user:password, \"identitytoken\")",
		Severity:    Critical,
		Keywords:    []string{`"auth"`, `"identitytoken"`},
		Files:       "**/.docker/config.json, **/.dockercfg, **/containers/auth.json",
		paths:       dockerAuthFile,
		pattern:     `"(?:auth|identitytoken)"\s*:\s*"([^"]{8,})"`,
		valid:       dockerAuth,
	},
	{
		ID:           "url-basic-auth",
		Description:  "password in a URL (scheme://user:password@host)",
		Severity:     High,
		Keywords:     []string{"://"},
		Config:       true,
		skipComments: true,
		pattern:      `\b[A-Za-z][A-Za-z0-9+.-]{1,15}://([^\s:/?#@"'<>\\]{1,64}):([^\s/?#@"'<>\\]{3,128})@[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*`,
		valid:        urlPassword,
	},
	{
		ID:          "jwt",
		Description: "JSON Web Token (eyJ... header.payload.signature)",
		Severity:    Medium,
		Keywords:    []string{"eyj"},
		Config:      true,
		pattern:     `\b(eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{16,})`,
		valid:       jwt,
	},
	{
		ID:           "generic-password",
		Description:  "password, secret or API key assigned a literal value in a config file",
		Severity:     Medium,
		Keywords:     []string{"password", "passwd", "pwd", "secret", "api_key", "apikey", "api-key", "token"},
		Files:        ".env, .env.*, *.env, *.properties, *.ini, *.conf, *.cnf, *.cfg, *.toml, *.yaml, *.yml, *.json",
		paths:        configFile,
		skipComments: true,
		// KEY = VALUE, KEY: VALUE, "KEY": "VALUE", KEY => VALUE, where KEY
		// starts a line, a quoted string or a list item, ends in one of the
		// words (db_password, spring.datasource.password, client_secret,
		// API_KEY), and VALUE is quoted or a bare word.
		pattern: `(?i)(?:^|[\s"'{,;(])(?:[A-Za-z_][A-Za-z0-9_.-]*[_.-])?(?:password|passwd|pwd|secret|secret[_-]?key|api[_-]?key|access[_-]?token|auth[_-]?token|api[_-]?token)["']?[ \t]*(?:=>|=|:)[ \t]*(?:"([^"\r\n]*)"|'([^'\r\n]*)'|([^\s"'#;,{}\[\]]+))`,
		valid:   func(_, s string) bool { return len(s) >= 8 && len(s) <= 200 && !placeholder(s) },
	},
}

// envRule flags ENV values, ARG defaults and RUN build arguments whose
// variable name says they hold a secret. See config.go.
var envRule = &Rule{
	ID:          "secret-env-var",
	Description: "literal value of a variable named like a secret (PASSWORD, SECRET, TOKEN, API_KEY, ACCESS_KEY, PRIVATE_KEY, CREDENTIALS) in ENV, ARG or a RUN build argument",
	Severity:    High,
	Keywords:    []string{"password", "passwd", "secret", "token", "api_key", "apikey", "access_key", "private_key", "credentials"},
	Files:       "image config only",
	Config:      true,
}

func init() {
	for _, r := range contentRules {
		r.re = regexp.MustCompile(r.pattern)
		for _, k := range r.Keywords {
			r.keywords = append(r.keywords, []byte(k))
		}
	}
}

// Rules lists the built-in rules in priority order.
func Rules() []Rule {
	out := make([]Rule, 0, len(contentRules)+1)
	for _, r := range slices.Concat(contentRules, []*Rule{envRule}) {
		c := *r
		c.Keywords = append([]string(nil), r.Keywords...)
		out = append(out, c)
	}
	return out
}

// githubToken checks the CRC32 that ends GitHub's prefixed tokens (the last
// six characters, base62) and a fine-grained token's randomness.
func githubToken(_, tok string) bool {
	if strings.HasPrefix(tok, "github_pat_") {
		return random(tok[len("github_pat_"):], 3.0)
	}
	body, sum := tok[4:len(tok)-6], tok[len(tok)-6:]
	return base62(crc32.ChecksumIEEE([]byte(body)), 6) == sum
}

const base62Digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// base62 writes n in base 62 with exactly width digits.
func base62(n uint32, width int) string {
	b := make([]byte, width)
	for i := width - 1; i >= 0; i-- {
		b[i] = base62Digits[n%62]
		n /= 62
	}
	return string(b)
}

func dockerAuthFile(p string) bool {
	dir, base := path.Split(p)
	switch base {
	case "config.json":
		return path.Base(dir) == ".docker"
	case ".dockercfg":
		return true
	case "auth.json":
		return path.Base(dir) == "containers"
	}
	return false
}

// dockerAuth accepts an "auth" value that decodes to user:password with both
// parts set, or an identity token that looks random.
func dockerAuth(match, secret string) bool {
	if !strings.HasPrefix(match, `"auth"`) {
		return random(secret, 3.0)
	}
	b, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(secret); err != nil {
			return false
		}
	}
	user, pass, ok := strings.Cut(string(b), ":")
	return ok && user != "" && pass != "" && !placeholder(pass)
}

// urlPassword accepts the password of scheme://user:password@host unless
// it is a stand-in, the user name again (guest:guest), a printf verb, or the
// host is a documentation domain.
func urlPassword(match, pass string) bool {
	_, rest, _ := strings.Cut(match, "://")
	user, rest, _ := strings.Cut(rest, ":")
	_, host, _ := strings.Cut(rest, "@")
	if p, err := url.PathUnescape(pass); err == nil {
		pass = p
	}
	if strings.EqualFold(user, pass) || strings.HasPrefix(pass, "%") || placeholder(pass) || exampleHost(host) {
		return false
	}
	if urlExampleUsers[strings.ToLower(user)] || urlExamplePasswords[strings.ToLower(pass)] {
		return false
	}
	return true
}

var urlExampleUsers = map[string]bool{"user": true, "username": true, "foo": true, "me": true, "name": true, "login": true, "someone": true}

var urlExamplePasswords = map[string]bool{
	"pass": true, "pw": true, "pwd": true, "passw": true, "passphrase": true, "token": true, "apikey": true,
	"api_key": true, "key": true, "bar": true, "baz": true, "qux": true, "xyzzy": true, "hunter2": true,
	"p@ss": true, "p@ssw0rd": true, "p@ssword": true, "p4ss": true, "p4ssw0rd": true, "pa55word": true, "opensesame": true,
}

// exampleHost reports the reserved documentation and test domains
// (RFC 2606, RFC 6761) and obvious stand-ins.
func exampleHost(host string) bool {
	h := strings.ToLower(host)
	for _, w := range []string{"example", "dummy", "fake", "bogus"} {
		if strings.Contains(h, w) {
			return true
		}
	}
	return strings.HasSuffix(h, ".test") || strings.HasSuffix(h, ".invalid")
}

// jwt accepts a token whose header is a JSON object with "alg" and whose
// payload is a JSON object, except jwt.io's and PyJWT's documentation
// examples ({"sub": "1234567890", "name": "John Doe"}, {"some": "payload"}).
func jwt(_, tok string) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	var header map[string]any
	if err := json.Unmarshal(b64url(parts[0]), &header); err != nil {
		return false
	}
	if _, ok := header["alg"]; !ok {
		return false
	}
	var payload map[string]any
	if json.Unmarshal(b64url(parts[1]), &payload) != nil {
		return false
	}
	return payload["name"] != "John Doe" && payload["some"] != "payload"
}

func b64url(s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil
	}
	return b
}

// configFile reports whether p is a configuration file the generic password
// rule reads.
func configFile(p string) bool {
	base := strings.ToLower(path.Base(p))
	if base == ".env" || strings.HasPrefix(base, ".env.") {
		return true
	}
	switch path.Ext(base) {
	case ".env", ".properties", ".ini", ".conf", ".cnf", ".cfg", ".toml", ".yaml", ".yml", ".json":
		return true
	}
	return false
}
