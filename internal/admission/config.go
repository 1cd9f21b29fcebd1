package admission

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

// Defaults of the configuration.
const (
	DefaultVerifyBudget  = 2 * time.Second
	DefaultPollInterval  = 10 * time.Second
	DefaultServerTimeout = 5 * time.Second
	// DefaultFeedOverlap is how far before its cursor each feed poll asks
	// again (late commits, clock skew between server replicas).
	DefaultFeedOverlap = time.Minute
	// DefaultPlacementLabel is the label that marks sensitive workloads.
	DefaultPlacementLabel = "bulwark.dev/data-classification"
)

// Mode is what a rule does when it is broken.
type Mode string

// Modes.
const (
	// Enforce denies the request.
	Enforce Mode = "enforce"
	// Warn admits it with an AdmissionReview warning.
	Warn Mode = "warn"
	// Audit admits it and logs the finding.
	Audit Mode = "audit"
	// Off does not evaluate the rule.
	Off Mode = "off"
)

// UnmarshalYAML checks the mode's spelling.
func (m *Mode) UnmarshalYAML(n *yaml.Node) error {
	switch Mode(n.Value) {
	case Enforce, Warn, Audit, Off:
		*m = Mode(n.Value)
		return nil
	}
	return fmt.Errorf("line %d: mode %q: want enforce, warn, audit or off", n.Line, n.Value)
}

// FailurePolicy says what happens when an image cannot be decided in time
// (unknown digest, server and registry unreachable).
type FailurePolicy string

// Failure policies.
const (
	// FailClosed denies (the default).
	FailClosed FailurePolicy = "closed"
	// FailOpen admits with a warning.
	FailOpen FailurePolicy = "open"
)

// UnmarshalYAML checks the spelling.
func (f *FailurePolicy) UnmarshalYAML(n *yaml.Node) error {
	switch FailurePolicy(n.Value) {
	case FailClosed, FailOpen:
		*f = FailurePolicy(n.Value)
		return nil
	}
	return fmt.Errorf("line %d: failurePolicy %q: want closed or open", n.Line, n.Value)
}

// Config is the webhook's configuration. LoadConfig reads it from YAML;
// it can also be built in Go (set Dir for relative paths, or set
// TrustPolicy directly).
type Config struct {
	// File is where the configuration was read from; Dir is the directory
	// relative paths are resolved against (File's directory by default).
	File string `yaml:"-"`
	Dir  string `yaml:"-"`

	// Trust says which signatures and attestations certify an image.
	Trust TrustConfig `yaml:"trust"`
	// TrustPolicy, when set in Go, is used instead of Trust.
	TrustPolicy *sign.TrustPolicy `yaml:"-"`
	// Policy is an optional policy file (internal/policy); when set, a
	// decision attestation made under exactly this file's digest is
	// required.
	Policy string `yaml:"policy"`
	// PolicyDigest is the digest required of decision attestations (set
	// from Policy, or directly).
	PolicyDigest string `yaml:"-"`
	// MaxDecisionAge, when set, requires a decision attestation at most
	// this old.
	MaxDecisionAge time.Duration `yaml:"maxDecisionAge"`

	// Exempt are namespaces (globs) no rule applies to.
	Exempt []string `yaml:"exempt"`
	// Images are the image rules; the first whose namespaces match applies.
	// None means enforce everywhere.
	Images []ImageRule `yaml:"images"`
	// Pods are the least-privilege rules.
	Pods PodRules `yaml:"pods"`
	// Placement, when set, segregates sensitive workloads.
	Placement *Placement `yaml:"placement"`
	// Owners requires owner labels.
	Owners OwnerRules `yaml:"owners"`

	// Server is the control-plane server whose certification feed fills
	// the cache; optional.
	Server ServerConfig `yaml:"server"`
	// VerifyBudget is how long a first-sight resolution and verification
	// may take (default 2s).
	VerifyBudget time.Duration `yaml:"verifyBudget"`
	// FailurePolicy is "closed" (default) or "open".
	FailurePolicy FailurePolicy `yaml:"failurePolicy"`
	// Confidential, when set, is the confidential-workload rule
	// (confidential.go).
	Confidential *Confidential `yaml:"confidential"`

	resolved bool
}

// TrustConfig names the trust policy: a sign trust-policy file, or keys
// given here (file paths or PEM text) trusted for Repositories.
type TrustConfig struct {
	// Policy is a trust policy file (see sign.LoadTrustPolicy).
	Policy string `yaml:"policy"`
	// Keys are public keys, each a PEM file path or the PEM text itself.
	Keys []string `yaml:"keys"`
	// Repositories are the repository globs the keys are trusted for
	// (default "**", every repository).
	Repositories []string `yaml:"repositories"`
	// Attestations are predicate types every image must also carry.
	Attestations []string `yaml:"attestations"`
}

// ImageRule sets the image rule's mode in some namespaces.
type ImageRule struct {
	// Namespaces are globs (path.Match); empty matches every namespace.
	Namespaces []string `yaml:"namespaces"`
	Mode       Mode     `yaml:"mode"`
}

// Placement segregates sensitive workloads onto a node pool.
type Placement struct {
	// Mode of the placement rule (default enforce).
	Mode Mode `yaml:"mode"`
	// Label marks sensitive workloads (default
	// bulwark.dev/data-classification) when its value is one of
	// SensitiveValues, on the object or its pod template.
	Label           string   `yaml:"label"`
	SensitiveValues []string `yaml:"sensitiveValues"`
	// Namespaces (globs) whose every workload is sensitive.
	Namespaces []string `yaml:"namespaces"`
	// NodeSelector and Tolerations of the segregated pool: injected into
	// sensitive workloads, refused on the others.
	NodeSelector map[string]string `yaml:"nodeSelector"`
	Tolerations  []Toleration      `yaml:"tolerations"`
	// Exempt namespaces (globs) are not checked (e.g. node agents).
	Exempt []string `yaml:"exempt"`
}

// Toleration is a Kubernetes toleration.
type Toleration struct {
	Key      string `yaml:"key" json:"key,omitempty"`
	Operator string `yaml:"operator" json:"operator,omitempty"`
	Value    string `yaml:"value" json:"value,omitempty"`
	Effect   string `yaml:"effect" json:"effect,omitempty"`
}

// OwnerRules require owner labels on the pod template.
type OwnerRules struct {
	// Mode (default enforce).
	Mode Mode `yaml:"mode"`
	// Labels are the required label keys; none means the rule is off.
	Labels []string `yaml:"labels"`
	// Exempt namespaces (globs).
	Exempt []string `yaml:"exempt"`
}

// ServerConfig points at `bulwark server`.
type ServerConfig struct {
	// URL of the server, e.g. https://bulwark.bulwark-system:8480.
	URL string `yaml:"url"`
	// Token is a viewer token; TokenFile a file holding one.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"tokenFile"`
	// PollInterval between feed polls (default 10s).
	PollInterval time.Duration `yaml:"pollInterval"`
	// Timeout of one feed request (default 5s).
	Timeout time.Duration `yaml:"timeout"`
	// CAFile verifies the server's certificate (default: system roots).
	CAFile string `yaml:"caFile"`
	// Overlap is how far before the newest change seen each poll asks
	// again (default 1m), so that a change stamped earlier but committed
	// later (PostgreSQL), or stamped by a server replica whose clock is
	// behind, is still fetched.
	Overlap time.Duration `yaml:"overlap"`
	// CacheFile, when set, is where the webhook persists its feed state
	// (statuses, tags, cursor, verified digests) after each poll that
	// changed it, and reads it at start, so that a webhook restarted
	// while the server is unreachable still knows revocations. Mount a
	// writable volume there (an emptyDir survives container restarts, a
	// persistent volume pod rescheduling too).
	CacheFile string `yaml:"cacheFile"`
}

// LoadConfig reads a configuration file and the files it names.
func LoadConfig(file string) (*Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading admission config: %w", err)
	}
	return ParseConfig(file, b)
}

// ParseConfig parses a configuration read from file (used in errors and
// to resolve relative paths) and loads the files it names. Errors name
// file:line.
func ParseConfig(file string, b []byte) (*Config, error) {
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty admission config", file)
		}
		return nil, fmt.Errorf("%s:%s", file, yamlMessage(err))
	}
	cfg.File = file
	cfg.Dir = filepath.Dir(file)
	var doc yaml.Node
	_ = yaml.Unmarshal(b, &doc)
	if err := cfg.resolve(); err != nil {
		var le *lineError
		if errors.As(err, &le) {
			return nil, fmt.Errorf("%s:%d: %s", file, findLine(&doc, le.path), le.msg)
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return cfg, nil
}

// path resolves p against the config's directory.
func (c *Config) path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.Dir == "" {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// resolve fills defaults, checks globs and loads the trust policy, keys,
// policy file and token file. It runs once.
func (c *Config) resolve() error {
	if c.resolved {
		return nil
	}
	if c.VerifyBudget == 0 {
		c.VerifyBudget = DefaultVerifyBudget
	}
	if c.VerifyBudget < 0 {
		return errAt("must be positive", "verifyBudget")
	}
	if c.FailurePolicy == "" {
		c.FailurePolicy = FailClosed
	}
	if c.Server.PollInterval == 0 {
		c.Server.PollInterval = DefaultPollInterval
	}
	if c.Server.Timeout == 0 {
		c.Server.Timeout = DefaultServerTimeout
	}
	if c.Server.Overlap == 0 {
		c.Server.Overlap = DefaultFeedOverlap
	}
	if c.Server.Overlap < 0 {
		return errAt(fmt.Sprintf("overlap %s: must be positive", c.Server.Overlap), "server", "overlap")
	}
	if c.Owners.Mode == "" {
		c.Owners.Mode = Enforce
	}
	if c.Confidential != nil {
		if err := c.Confidential.validate(); err != nil {
			return err
		}
	}
	if len(c.Images) == 0 {
		c.Images = []ImageRule{{Mode: Enforce}}
	}
	for i := range c.Images {
		if c.Images[i].Mode == "" {
			c.Images[i].Mode = Enforce
		}
		if err := checkGlobs(c.Images[i].Namespaces, "images"); err != nil {
			return err
		}
	}
	if err := checkGlobs(c.Exempt, "exempt"); err != nil {
		return err
	}
	if err := c.Pods.resolve(); err != nil {
		return err
	}
	if p := c.Placement; p != nil {
		if p.Mode == "" {
			p.Mode = Enforce
		}
		if p.Label == "" {
			p.Label = DefaultPlacementLabel
		}
		if len(p.NodeSelector) == 0 {
			return errAt("nodeSelector of the segregated pool is required", "placement")
		}
		if len(p.SensitiveValues) == 0 && len(p.Namespaces) == 0 {
			return errAt("needs sensitiveValues or namespaces", "placement")
		}
		if err := checkGlobs(p.Namespaces, "placement", "namespaces"); err != nil {
			return err
		}
		if err := checkGlobs(p.Exempt, "placement", "exempt"); err != nil {
			return err
		}
		for _, t := range p.Tolerations {
			if t.Operator != "" && t.Operator != "Equal" && t.Operator != "Exists" {
				return errAt(fmt.Sprintf("toleration operator %q: want Equal or Exists", t.Operator), "placement", "tolerations")
			}
		}
	}
	if err := checkGlobs(c.Owners.Exempt, "owners", "exempt"); err != nil {
		return err
	}
	if c.Server.TokenFile != "" && c.Server.Token == "" {
		b, err := os.ReadFile(c.path(c.Server.TokenFile))
		if err != nil {
			return errAt(fmt.Sprintf("reading token file: %v", err), "server", "tokenFile")
		}
		c.Server.Token = strings.TrimSpace(string(b))
	}
	if c.Server.URL != "" && !strings.HasPrefix(c.Server.URL, "http://") && !strings.HasPrefix(c.Server.URL, "https://") {
		return errAt(fmt.Sprintf("url %q: want http:// or https://", c.Server.URL), "server", "url")
	}
	if c.Policy != "" && c.PolicyDigest == "" {
		p, err := policy.Load(c.path(c.Policy))
		if err != nil {
			return errAt(err.Error(), "policy")
		}
		c.PolicyDigest = p.Digest
	}
	if c.TrustPolicy == nil {
		tp, err := c.Trust.load(c)
		if err != nil {
			return err
		}
		c.TrustPolicy = tp
	}
	c.resolved = true
	return nil
}

func checkGlobs(globs []string, where ...string) error {
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			return errAt(fmt.Sprintf("namespace pattern %q: %v", g, err), where...)
		}
	}
	return nil
}

// load builds the trust policy from a file or from inline keys.
func (t TrustConfig) load(c *Config) (*sign.TrustPolicy, error) {
	switch {
	case t.Policy != "" && len(t.Keys) > 0:
		return nil, errAt("give either policy or keys, not both", "trust")
	case t.Policy != "":
		tp, err := sign.LoadTrustPolicy(c.path(t.Policy))
		if err != nil {
			return nil, errAt(err.Error(), "trust", "policy")
		}
		if len(t.Attestations) > 0 {
			for i := range tp.Entries {
				tp.Entries[i].Attestations = append(tp.Entries[i].Attestations, t.Attestations...)
			}
		}
		return tp, nil
	case len(t.Keys) == 0:
		// No trust: images cannot be certified. New refuses this unless
		// the webhook is offline (bulwark check without --verify).
		return nil, nil
	}
	e := sign.TrustEntry{Repositories: t.Repositories, Attestations: t.Attestations}
	if len(e.Repositories) == 0 {
		e.Repositories = []string{"**"}
	}
	for _, k := range t.Keys {
		var pem []byte
		name := "inline key"
		if strings.HasPrefix(strings.TrimSpace(k), "-----BEGIN") {
			pem = []byte(k)
		} else {
			name = c.path(k)
			b, err := os.ReadFile(name)
			if err != nil {
				return nil, errAt(fmt.Sprintf("reading key: %v", err), "trust", "keys")
			}
			pem = b
		}
		pub, err := sign.LoadPublicKey(pem)
		if err != nil {
			return nil, errAt(fmt.Sprintf("%s: %v", name, err), "trust", "keys")
		}
		e.KeyFiles = append(e.KeyFiles, name)
		e.Keys = append(e.Keys, pub)
	}
	file := c.File
	if file == "" {
		file = "(admission config)"
	}
	return &sign.TrustPolicy{File: file, Entries: []sign.TrustEntry{e}}, nil
}

// InlineTrust returns a trust policy trusting keys for every repository,
// for configurations built in Go.
func InlineTrust(keys ...crypto.PublicKey) *sign.TrustPolicy {
	return &sign.TrustPolicy{File: "(inline)", Entries: []sign.TrustEntry{{Repositories: []string{"**"}, Keys: keys}}}
}

// matchNamespace reports whether ns matches any glob; no globs match all.
func matchNamespace(globs []string, ns string) bool {
	if len(globs) == 0 {
		return true
	}
	return matchAny(globs, ns)
}

// matchAny reports whether ns matches one of globs (none: false).
func matchAny(globs []string, ns string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, ns); ok {
			return true
		}
	}
	return false
}
