package respond

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bulwark-sec/bulwark/internal/yamlmsg"
)

// Actions.
const (
	Alert      = "alert"      // notify only
	Replace    = "replace"    // delete the pod; its controller recreates it
	Rollback   = "rollback"   // patch the controller to the rollback target
	Quarantine = "quarantine" // label the pod, deny-all NetworkPolicy
)

// Triggers.
const (
	TriggerDrift   = "drift"
	TriggerRevoked = "revoked"
)

// Defaults of a policy's zero limits.
const (
	DefaultPerNamespace = 10
	DefaultRateWindow   = time.Minute
	DefaultBreakerMax   = 3
	DefaultBreakerSpan  = 10 * time.Minute
)

// Policy says which action answers which trigger where, within which
// limits.
type Policy struct {
	// DryRun records and notifies what would be done and does nothing.
	DryRun bool
	// PerNamespace actions of one kind at most in RateWindow in one
	// namespace; beyond, alerts.
	PerNamespace int
	RateWindow   time.Duration
	// BreakerMax actions at most on one controller in BreakerSpan; beyond,
	// the breaker is open for it: alerts.
	BreakerMax  int
	BreakerSpan time.Duration
	// Rules are tried in order; the first whose namespace and application
	// patterns match applies, else Default.
	Rules   []Rule
	Default Rule
}

// Rule chooses the actions for the workloads it matches.
type Rule struct {
	Namespace   string // path.Match pattern; "" matches all
	Application string // path.Match pattern; "" matches all
	Drift       string // alert, replace or quarantine
	Revoked     string // alert, rollback or quarantine
}

// Default is the policy without a file: alert on everything, default
// limits.
func Default() *Policy {
	return &Policy{PerNamespace: DefaultPerNamespace, RateWindow: DefaultRateWindow, BreakerMax: DefaultBreakerMax,
		BreakerSpan: DefaultBreakerSpan, Default: Rule{Drift: Alert, Revoked: Alert}}
}

// fileRule and filePolicy are the YAML form.
type fileRule struct {
	Namespace   string `yaml:"namespace"`
	Application string `yaml:"application"`
	Drift       string `yaml:"drift"`
	Revoked     string `yaml:"revoked"`
}

type filePolicy struct {
	DryRun    bool `yaml:"dryRun"`
	RateLimit struct {
		PerNamespace int    `yaml:"perNamespace"`
		Window       string `yaml:"window"`
	} `yaml:"rateLimit"`
	Breaker struct {
		Max    int    `yaml:"max"`
		Window string `yaml:"window"`
	} `yaml:"breaker"`
	Default fileRule   `yaml:"default"`
	Rules   []fileRule `yaml:"rules"`
}

// Load reads the policy file at file.
func Load(file string) (*Policy, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading response policy %q: %w", file, err)
	}
	p, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("response policy %q: %w", file, err)
	}
	return p, nil
}

// Parse parses a response policy; unknown keys and unknown actions are
// errors (a typo must not turn a response off).
func Parse(b []byte) (*Policy, error) {
	var f filePolicy
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parsing: %s", yamlmsg.Of(err))
	}
	p := Default()
	p.DryRun = f.DryRun
	var err error
	if p.PerNamespace, p.RateWindow, err = limit(f.RateLimit.PerNamespace, f.RateLimit.Window, p.PerNamespace, p.RateWindow); err != nil {
		return nil, fmt.Errorf("rateLimit: %w", err)
	}
	if p.BreakerMax, p.BreakerSpan, err = limit(f.Breaker.Max, f.Breaker.Window, p.BreakerMax, p.BreakerSpan); err != nil {
		return nil, fmt.Errorf("breaker: %w", err)
	}
	if p.Default, err = rule(f.Default, p.Default); err != nil {
		return nil, fmt.Errorf("default: %w", err)
	}
	if p.Default.Namespace != "" || p.Default.Application != "" {
		return nil, errors.New("default: no namespace or application (it applies where no rule does)")
	}
	for i, fr := range f.Rules {
		r, err := rule(fr, p.Default)
		if err != nil {
			return nil, fmt.Errorf("rule %d: %w", i+1, err)
		}
		p.Rules = append(p.Rules, r)
	}
	return p, nil
}

func limit(n int, window string, defN int, defW time.Duration) (int, time.Duration, error) {
	if n < 0 {
		return 0, 0, fmt.Errorf("%d is negative", n)
	}
	if n == 0 {
		n = defN
	}
	w := defW
	if window != "" {
		d, err := time.ParseDuration(window)
		if err != nil || d <= 0 {
			return 0, 0, fmt.Errorf("window %q is not a positive duration", window)
		}
		w = d
	}
	return n, w, nil
}

func rule(f fileRule, def Rule) (Rule, error) {
	for _, pat := range []string{f.Namespace, f.Application} {
		if _, err := path.Match(pat, ""); err != nil {
			return Rule{}, fmt.Errorf("pattern %q: %w", pat, err)
		}
	}
	r := Rule{Namespace: f.Namespace, Application: f.Application, Drift: f.Drift, Revoked: f.Revoked}
	if r.Drift == "" {
		r.Drift = def.Drift
	}
	if r.Revoked == "" {
		r.Revoked = def.Revoked
	}
	switch r.Drift {
	case Alert, Replace, Quarantine:
	default:
		return Rule{}, fmt.Errorf("drift: action %q (want alert, replace or quarantine)", r.Drift)
	}
	switch r.Revoked {
	case Alert, Rollback, Quarantine:
	default:
		return Rule{}, fmt.Errorf("revoked: action %q (want alert, rollback or quarantine)", r.Revoked)
	}
	return r, nil
}

// For is the rule for a workload in namespace of application.
func (p *Policy) For(namespace, application string) Rule {
	for _, r := range p.Rules {
		if match(r.Namespace, namespace) && match(r.Application, application) {
			return r
		}
	}
	return p.Default
}

func match(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	ok, _ := path.Match(pattern, s)
	return ok
}

// Action is the action p chooses for trigger in namespace of application.
func (p *Policy) Action(trigger, namespace, application string) string {
	r := p.For(namespace, application)
	if trigger == TriggerDrift {
		return r.Drift
	}
	return r.Revoked
}
