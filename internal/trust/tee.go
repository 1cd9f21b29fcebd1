package trust

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"sigs.k8s.io/yaml"

	"github.com/bulwark-sec/bulwark/internal/yamlmsg"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/instance"
)

// TEERule asks a TEE of the workloads it names: their identities are
// issued and renewed only while a verified confidential instance of one
// of Kinds vouches for them (identity.ReasonUnattested otherwise).
type TEERule struct {
	// SpiffeIDs are globs over the whole SPIFFE ID (path.Match: '*' stays
	// within one path segment; a pattern ending in "/**" also matches
	// everything under its prefix).
	SpiffeIDs []string `json:"spiffeIDs,omitempty"`
	// Namespaces are globs over the workload's namespace.
	Namespaces []string `json:"namespaces,omitempty"`
	// Kinds are the TEE kinds accepted (sev-snp, tdx, sgx); at least one.
	Kinds []attest.Kind `json:"tee"`
	// Regions, when set, are the regions the instance must be in.
	Regions []string `json:"regions,omitempty"`
	// AttestedRegion refuses a region known only from the node's
	// configuration (instance.RegionNodeConfig).
	AttestedRegion bool `json:"attestedRegion,omitempty"`
}

// TEEPolicy is the per-workload attestation condition of identity
// issuance: every rule that names a workload applies (the strictest
// wins; a workload cannot choose the rule it falls under).
type TEEPolicy struct {
	Rules []TEERule `json:"rules"`
}

// LoadTEEPolicy reads a TEE policy file (YAML or JSON, "rules: [...]");
// unknown keys are errors.
func LoadTEEPolicy(file string) (*TEEPolicy, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading identity TEE policy: %w", err)
	}
	var p TEEPolicy
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		return nil, fmt.Errorf("parsing identity TEE policy %s: %s", file, yamlmsg.Of(err))
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("identity TEE policy %s: %w", file, err)
	}
	return &p, nil
}

// ParseTEERule reads the flag form of a rule: SELECTOR=KIND[,KIND...]
// where SELECTOR is a SPIFFE ID glob ("spiffe://td/ns/pay/**") or
// "ns:GLOB" for namespaces.
func ParseTEERule(s string) (TEERule, error) {
	var r TEERule
	i := strings.LastIndex(s, "=")
	if i <= 0 || i == len(s)-1 {
		return r, fmt.Errorf("TEE rule %q: want SELECTOR=KIND[,KIND] (selector: a SPIFFE ID glob or ns:GLOB)", s)
	}
	sel, kinds := s[:i], s[i+1:]
	if ns, isNS := strings.CutPrefix(sel, "ns:"); isNS {
		r.Namespaces = []string{ns}
	} else {
		r.SpiffeIDs = []string{sel}
	}
	for k := range strings.SplitSeq(kinds, ",") {
		r.Kinds = append(r.Kinds, attest.Kind(strings.TrimSpace(k)))
	}
	p := TEEPolicy{Rules: []TEERule{r}}
	if err := p.validate(); err != nil {
		return r, fmt.Errorf("TEE rule %q: %w", s, err)
	}
	return r, nil
}

func (p *TEEPolicy) validate() error {
	for i, r := range p.Rules {
		if len(r.SpiffeIDs)+len(r.Namespaces) == 0 {
			return fmt.Errorf("rule %d names no workload (spiffeIDs or namespaces)", i+1)
		}
		if len(r.Kinds) == 0 {
			return fmt.Errorf("rule %d asks for no TEE kind (tee: [sev-snp, tdx, sgx])", i+1)
		}
		for _, k := range r.Kinds {
			if _, err := attest.ParseKind(string(k)); err != nil {
				return fmt.Errorf("rule %d: %w", i+1, err)
			}
		}
		for _, g := range slices.Concat(r.SpiffeIDs, r.Namespaces) {
			if _, err := path.Match(strings.TrimSuffix(g, "/**"), ""); err != nil || g == "" {
				return fmt.Errorf("rule %d: glob %q is malformed", i+1, g)
			}
		}
		for _, g := range r.SpiffeIDs {
			if !strings.HasPrefix(g, "spiffe://") {
				return fmt.Errorf("rule %d: SPIFFE ID glob %q does not start with spiffe://", i+1, g)
			}
		}
	}
	return nil
}

// globMatch is path.Match, with a trailing "/**" matching the prefix and
// everything under it.
func globMatch(glob, s string) bool {
	if prefix, ok := strings.CutSuffix(glob, "/**"); ok {
		if m, _ := path.Match(prefix, s); m {
			return true
		}
		for i := len(s) - 1; i > 0; i-- {
			if s[i] == '/' {
				if m, _ := path.Match(prefix, s[:i]); m {
					return true
				}
			}
		}
		return false
	}
	m, _ := path.Match(glob, s)
	return m
}

// rules returns the rules that name the workload.
func (p *TEEPolicy) rules(id spiffeid.ID, w identity.Workload) []TEERule {
	var out []TEERule
	for _, r := range p.Rules {
		if slices.ContainsFunc(r.SpiffeIDs, func(g string) bool { return globMatch(g, id.String()) }) ||
			slices.ContainsFunc(r.Namespaces, func(g string) bool { return globMatch(g, w.Namespace) }) {
			out = append(out, r)
		}
	}
	return out
}

// TEEInstances is what the condition reads of the confidential instances
// (an *instance.Tracker): memory only, no store on the issuance path.
type TEEInstances interface {
	List(workload string) []instance.Instance
	Trusted(id string) (bool, string)
}

// Facts returns the attestation condition for identity.Issuer.TEE: nil
// for a workload no rule names; else it holds only while the workload has
// at least one confidential instance registered under its SPIFFE ID on
// its node for its image digest, and every such instance is trusted now
// (verified, re-attested in time: not stale, failed or revoked), of a
// kind every naming rule accepts, in a region it allows. Every instance,
// not one: the agent cannot tell which of them the container runs in, so
// one that lost its trust withdraws the identity.
func (p *TEEPolicy) Facts(inst TEEInstances) func(id spiffeid.ID, w identity.Workload) *identity.TEEFacts {
	return func(id spiffeid.ID, w identity.Workload) *identity.TEEFacts {
		rules := p.rules(id, w)
		if len(rules) == 0 {
			return nil
		}
		refuse := func(format string, args ...any) *identity.TEEFacts {
			return &identity.TEEFacts{Detail: fmt.Sprintf(format, args...)}
		}
		if inst == nil {
			return refuse("the policy asks for a TEE and this server tracks no confidential instances")
		}
		var held []string
		for _, in := range inst.List(id.String()) {
			if in.Node != w.Node || in.Image != w.Image {
				continue
			}
			if ok, why := inst.Trusted(in.ID); !ok {
				return refuse("%s", why)
			}
			for _, r := range rules {
				switch {
				case !slices.Contains(r.Kinds, in.Kind):
					return refuse("instance %q is %s; the policy asks for %s", in.ID, in.Kind, kindList(r.Kinds))
				case len(r.Regions) > 0 && !slices.Contains(r.Regions, in.Region):
					return refuse("instance %q runs in region %q (%s), not one of %v", in.ID, in.Region, in.RegionSource, r.Regions)
				case r.AttestedRegion && in.RegionSource == instance.RegionNodeConfig:
					return refuse("instance %q has region %q from the node's configuration only; the policy asks for an attested region", in.ID, in.Region)
				}
			}
			held = append(held, fmt.Sprintf("%s (%s, %s)", in.ID, in.Kind, in.Region))
		}
		if len(held) == 0 {
			return refuse("no confidential instance of %s is registered on node %q for image %s; the policy asks for %s",
				id, w.Node, w.Image, kindList(rules[0].Kinds))
		}
		return &identity.TEEFacts{Holds: true, Detail: "attested by " + strings.Join(held, ", ")}
	}
}

func kindList(ks []attest.Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, " or ")
}
