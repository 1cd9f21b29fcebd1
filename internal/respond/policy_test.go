package respond

import (
	"strings"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	p, err := Parse([]byte(`
dryRun: true
rateLimit: {perNamespace: 5, window: 30s}
breaker: {max: 2, window: 5m}
default: {drift: alert, revoked: alert}
rules:
- namespace: prod-*
  application: shop
  drift: replace
  revoked: rollback
- namespace: prod-*
  drift: quarantine
`))
	if err != nil {
		t.Fatal(err)
	}
	if !p.DryRun || p.PerNamespace != 5 || p.RateWindow != 30*time.Second || p.BreakerMax != 2 || p.BreakerSpan != 5*time.Minute {
		t.Errorf("limits: %+v", p)
	}
	for _, tc := range []struct{ trigger, ns, app, want string }{
		{TriggerDrift, "prod-eu", "shop", Replace},
		{TriggerRevoked, "prod-eu", "shop", Rollback},
		{TriggerDrift, "prod-eu", "blog", Quarantine},
		{TriggerRevoked, "prod-eu", "blog", Alert}, // the rule leaves it to the default
		{TriggerDrift, "dev", "shop", Alert},
		{TriggerDrift, "", "", Alert},
	} {
		if got := p.Action(tc.trigger, tc.ns, tc.app); got != tc.want {
			t.Errorf("%s in %s/%s: %s, want %s", tc.trigger, tc.ns, tc.app, got, tc.want)
		}
	}
	d := Default()
	if d.Action(TriggerDrift, "x", "y") != Alert || d.Action(TriggerRevoked, "x", "y") != Alert || d.DryRun {
		t.Errorf("default policy: %+v", d)
	}
}

// A typo must not switch a response off: every mistake is an error that
// says where.
func TestParsePolicyRefusesMistakes(t *testing.T) {
	for doc, want := range map[string]string{
		"dryrun: true": "field dryrun not found",
		"rules:\n- namespace: a\n  drfit: replace":    "field drfit not found",
		"default: {drift: kill}":                      `drift: action "kill"`,
		"rules:\n- drift: rollback":                   `rule 1: drift: action "rollback"`,
		"rules:\n- revoked: replace":                  `revoked: action "replace"`,
		"rules:\n- namespace: '[a'\n  drift: replace": "syntax error in pattern",
		"rateLimit: {perNamespace: -1}":               "rateLimit: -1 is negative",
		"breaker: {window: soon}":                     `breaker: window "soon"`,
		"breaker: {window: -1m}":                      `breaker: window "-1m"`,
		"default: {namespace: x}":                     "default: no namespace",
		"rules: {a: b}":                               "cannot unmarshal",
		"dryRun: [":                                   "parsing",
	} {
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", doc, err, want)
		}
		// in the file's terms, on one line: no Go type, no line break
		if err != nil && (strings.Contains(err.Error(), " in type ") || strings.Contains(err.Error(), "\n")) {
			t.Errorf("%q: %q names a Go type or breaks the line", doc, err)
		}
	}
}
