package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"gopkg.in/yaml.v3"

	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/yamlmsg"
)

// Policy is a loaded, checked policy.
type Policy struct {
	Name     string
	File     string
	Digest   string // sha256 of the file bytes
	Builtins Builtins
	Rules    []Rule
	Waivers  []Waiver
}

// Builtins configures the built-in rules. A nil *Enabled means on.
type Builtins struct {
	Vulnerabilities VulnerabilitiesRule `yaml:"vulnerabilities"`
	PackagePins     PackagePinsRule     `yaml:"package-pins"`
	BaseImage       BaseImageRule       `yaml:"base-image"`
	ImageAge        ImageAgeRule        `yaml:"image-age"`
	NonRoot         Toggle              `yaml:"non-root"`
	Lean            LeanRule            `yaml:"lean"`
	RequiredLabels  RequiredLabelsRule  `yaml:"required-labels"`
	Secrets         Toggle              `yaml:"secrets"`
	// InventoryComplete fails an image with records its catalogers could
	// not read (on by default, so certification requires it).
	InventoryComplete Toggle `yaml:"inventory-complete"`
}

// Toggle is the switch every built-in rule has.
type Toggle struct {
	Enabled *bool `yaml:"enabled"`
}

// On reports whether the rule runs.
func (t Toggle) On() bool { return t.Enabled == nil || *t.Enabled }

// VulnerabilitiesRule denies findings at or above MaxSeverity.
type VulnerabilitiesRule struct {
	Toggle      `yaml:",inline"`
	MaxSeverity string `yaml:"maxSeverity"` // deny at or above; default high
	OnlyFixable bool   `yaml:"onlyFixable"` // deny only findings with a fix
	severity    match.Severity
}

// PackagePinsRule pins package versions and bans packages.
type PackagePinsRule struct {
	Toggle `yaml:",inline"`
	Allow  []Pin    `yaml:"allow"`
	Deny   []Banned `yaml:"deny"`
	pins   []compiledPin
}

// Pin allows only the listed versions or ranges of a package.
type Pin struct {
	Name     string   `yaml:"name"`
	Type     string   `yaml:"type"`     // package type (deb, npm, ...); empty = any
	Versions []string `yaml:"versions"` // "1.2.3", ">=1.2.0 <2.0.0", "!=1.4.0"
}

// Banned names a package that must not be in the image.
type Banned struct {
	Name   string `yaml:"name"`
	Type   string `yaml:"type"`
	Reason string `yaml:"reason"`
}

// BaseImageRule requires the image to be built on an approved base.
type BaseImageRule struct {
	Toggle   `yaml:",inline"`
	Approved []string `yaml:"approved"` // references with digests: registry/debian@sha256:...
}

// ImageAgeRule bounds the age of the image config's created time.
type ImageAgeRule struct {
	Toggle  `yaml:",inline"`
	MaxDays int `yaml:"maxDays"` // default 90
}

// LeanRule bounds size and package count; Distroless forbids shells and
// package managers.
type LeanRule struct {
	Toggle      `yaml:",inline"`
	MaxSizeMB   int  `yaml:"maxSizeMB"`   // default 1024; 0 keeps the default
	MaxPackages int  `yaml:"maxPackages"` // default 0: no limit
	Distroless  bool `yaml:"distroless"`
}

// RequiredLabelsRule lists image labels that must be set.
type RequiredLabelsRule struct {
	Toggle `yaml:",inline"`
	Labels []string `yaml:"labels"` // default org.opencontainers.image.source and team
}

// Rule is a custom rule: the image passes when Condition is true.
type Rule struct {
	Name        string
	Description string
	Message     string
	Condition   string
	Line        int
	program     cel.Program
}

// Waiver exempts images from a rule until it expires.
type Waiver struct {
	Rule     string    `yaml:"rule" json:"rule"`
	Images   []string  `yaml:"images" json:"images,omitempty"`     // repository globs; empty = every image
	Packages []string  `yaml:"packages" json:"packages,omitempty"` // package names the waiver covers (package rules)
	IDs      []string  `yaml:"ids" json:"ids,omitempty"`           // vulnerability ids, secret rules or paths
	Reason   string    `yaml:"reason" json:"reason"`
	Owner    string    `yaml:"owner" json:"owner"`
	Expires  time.Time `yaml:"expires" json:"expires"`
	Line     int       `yaml:"-" json:"-"`
}

type fileDoc struct {
	APIVersion string      `yaml:"apiVersion"`
	Kind       string      `yaml:"kind"`
	Name       string      `yaml:"name"`
	Builtins   Builtins    `yaml:"builtins"`
	Rules      []ruleDoc   `yaml:"rules"`
	Waivers    []yaml.Node `yaml:"waivers"`
}

type ruleDoc struct {
	Name        string    `yaml:"name"`
	Description string    `yaml:"description"`
	Message     string    `yaml:"message"`
	Condition   yaml.Node `yaml:"condition"`
}

// Load reads and checks a policy file: YAML syntax, unknown keys, waivers,
// version pins and every CEL condition, each error with file:line.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load over bytes; name labels errors.
func Parse(name string, data []byte) (*Policy, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc fileDoc
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %s", name, yamlmsg.Of(err))
	}
	sum := sha256.Sum256(data)
	p := &Policy{Name: doc.Name, File: name, Digest: "sha256:" + hex.EncodeToString(sum[:]), Builtins: doc.Builtins}
	if doc.Kind != "" && doc.Kind != "Policy" {
		return nil, fmt.Errorf("%s: kind is %q, want Policy", name, doc.Kind)
	}
	if err := p.Builtins.check(name); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if err := p.digestDefaults(); err != nil {
			return nil, err
		}
	}
	env, err := newEnv()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, b := range builtinNames {
		seen[b] = true
	}
	for _, rd := range doc.Rules {
		line := rd.Condition.Line
		if rd.Name == "" {
			return nil, fmt.Errorf("%s:%d: rule has no name", name, line)
		}
		if seen[rd.Name] {
			return nil, fmt.Errorf("%s:%d: rule %q: the name is taken", name, line, rd.Name)
		}
		seen[rd.Name] = true
		if rd.Condition.Kind != yaml.ScalarNode || strings.TrimSpace(rd.Condition.Value) == "" {
			return nil, fmt.Errorf("%s:%d: rule %q: condition must be a CEL expression", name, line, rd.Name)
		}
		prg, err := compile(env, rd.Condition.Value)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: rule %q: %v", name, line, rd.Name, err)
		}
		p.Rules = append(p.Rules, Rule{Name: rd.Name, Description: rd.Description, Message: rd.Message, Condition: rd.Condition.Value, Line: line, program: prg})
	}
	for _, n := range doc.Waivers {
		var w Waiver
		if err := decodeStrict(&n, &w); err != nil {
			return nil, fmt.Errorf("%s:%d: waiver: %v", name, n.Line, err)
		}
		w.Line = n.Line
		switch {
		case !seen[w.Rule]:
			return nil, fmt.Errorf("%s:%d: waiver for unknown rule %q", name, n.Line, w.Rule)
		case w.Reason == "" || w.Owner == "" || w.Expires.IsZero():
			return nil, fmt.Errorf("%s:%d: waiver for %q needs a reason, an owner and an expires date", name, n.Line, w.Rule)
		}
		p.Waivers = append(p.Waivers, w)
	}
	return p, nil
}

// DefaultName names the built-in policy, applied when no policy file is given.
const DefaultName = "default"

// digestDefaults names an empty policy (the built-in defaults) and digests
// its canonical form, the YAML document of the effective built-in rules, so
// that a decision names the rules applied rather than the SHA-256 of nothing,
// and a change of a default changes the digest.
func (p *Policy) digestDefaults() error {
	p.Name = DefaultName
	canon, err := yaml.Marshal(fileDoc{APIVersion: "bulwark.dev/v1", Kind: "Policy", Name: DefaultName, Builtins: p.Builtins})
	if err != nil {
		return fmt.Errorf("encoding the default policy: %w", err)
	}
	sum := sha256.Sum256(canon)
	p.Digest = "sha256:" + hex.EncodeToString(sum[:])
	return nil
}

// decodeStrict decodes one node refusing unknown keys (yaml.v3 checks them
// only in a Decoder).
func decodeStrict(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		// its lines count from the node, not the file: the caller names the node's
		return errors.New(yamlLine.ReplaceAllString(yamlmsg.Of(err), ""))
	}
	return nil
}

var yamlLine = regexp.MustCompile(`(^|; )line \d+: `)

func (b *Builtins) check(name string) error {
	v := &b.Vulnerabilities
	if v.MaxSeverity == "" {
		v.MaxSeverity = "high"
	}
	sev, ok := match.ParseSeverity(v.MaxSeverity)
	if !ok {
		return fmt.Errorf("%s: builtins.vulnerabilities.maxSeverity: unknown severity %q", name, v.MaxSeverity)
	}
	v.severity = sev
	for _, pin := range b.PackagePins.Allow {
		cp, err := compilePin(pin)
		if err != nil {
			return fmt.Errorf("%s: builtins.package-pins: %s: %v", name, pin.Name, err)
		}
		b.PackagePins.pins = append(b.PackagePins.pins, cp)
	}
	if b.ImageAge.MaxDays == 0 {
		b.ImageAge.MaxDays = 90
	}
	if b.Lean.MaxSizeMB == 0 {
		b.Lean.MaxSizeMB = 1024
	}
	if b.RequiredLabels.Labels == nil {
		b.RequiredLabels.Labels = []string{"org.opencontainers.image.source", "team"}
	}
	return nil
}
