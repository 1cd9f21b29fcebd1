package secretstore

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
)

// Policy says to which workloads a secret is released. Every field set
// must hold; SPIFFEIDs must match.
type Policy struct {
	// SPIFFEIDs are globs over the workload's SPIFFE ID: '*' matches within
	// a path segment, a final "/**" matches any rest
	// ("spiffe://prod.example/ns/payments/**").
	SPIFFEIDs []string `json:"spiffeIDs"`
	// CertifiedUnder names a policy under which the workload's image
	// digest must be certified now.
	CertifiedUnder string `json:"certifiedUnder,omitempty"`
	// NoDrift refuses a workload that ran anything outside its allowlist.
	NoDrift bool `json:"noDrift,omitempty"`
	// TEE is the attestation kind the workload must hold ("sev-snp",
	// "tdx", "sgx").
	TEE string `json:"tee,omitempty"`
	// Regions the workload's node must be in. The secret's data classes
	// narrow them further to their residency.
	Regions []string `json:"regions,omitempty"`
	// RequireGrant refuses a workload whose application is not granted
	// every data class of the secret.
	RequireGrant bool `json:"requireGrant,omitempty"`
}

// TEE kinds a policy may require.
var teeKinds = []string{"sev-snp", "tdx", "sgx"}

// ParsePolicy decodes a policy (JSON, unknown fields refused) and
// validates it.
func ParsePolicy(b []byte) (Policy, error) {
	var p Policy
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, invalid("malformed policy: %v", err)
	}
	if dec.More() {
		return p, invalid("malformed policy: data after the object")
	}
	return p, p.Validate()
}

// Validate reports the first thing wrong with p.
func (p Policy) Validate() error {
	if len(p.SPIFFEIDs) == 0 {
		return invalid("policy: spiffeIDs is empty (a secret released to no one is not a policy)")
	}
	for _, g := range p.SPIFFEIDs {
		if !strings.HasPrefix(g, "spiffe://") || len(g) <= len("spiffe://") {
			return invalid("policy: SPIFFE ID glob %q does not start with spiffe://<trust domain>", g)
		}
		if _, err := path.Match(strings.TrimSuffix(g, "/**"), ""); err != nil {
			return invalid("policy: SPIFFE ID glob %q: %v", g, err)
		}
	}
	if p.TEE != "" && !slices.Contains(teeKinds, p.TEE) {
		return invalid("policy: unknown TEE kind %q (want one of %s)", p.TEE, strings.Join(teeKinds, ", "))
	}
	for _, r := range p.Regions {
		if r == "" || len(r) > 64 || strings.ContainsAny(r, " \t\n/") {
			return invalid("policy: region %q: want 1-64 characters without spaces or '/'", r)
		}
	}
	return nil
}

// MatchID reports whether id matches the glob g.
func MatchID(g, id string) bool {
	if rest, ok := strings.CutSuffix(g, "/**"); ok {
		gs, is := strings.Split(rest, "/"), strings.Split(id, "/")
		if len(is) <= len(gs) {
			return false
		}
		return matchSegments(gs, is[:len(gs)])
	}
	gs, is := strings.Split(g, "/"), strings.Split(id, "/")
	return len(gs) == len(is) && matchSegments(gs, is)
}

func matchSegments(gs, is []string) bool {
	for i := range gs {
		if ok, _ := path.Match(gs[i], is[i]); !ok {
			return false
		}
	}
	return true
}

// Workload is what the server knows of a running workload from its agent
// and its certification, never from what the workload says.
type Workload struct {
	ID          string   // SPIFFE ID
	Digest      string   // image manifest digest
	Node        string   // node name
	Region      string   // the node's region
	Application string   // the application the image belongs to ("" none)
	Certified   []string // policies under which Digest is certified now
	Drifted     bool
	TEE         string // verified attestation kind ("" none)
}

// Denied is a refusal with its reason, for the workload and the audit log.
type Denied struct {
	Secret, Reason string
}

func (d *Denied) Error() string { return fmt.Sprintf("secret %q refused: %s", d.Secret, d.Reason) }

// decide applies a secret's policy to w; regions is the policy's regions
// narrowed by the secret's classes (nil: any), classes the secret's data
// classes, granted reports an application's grant of a class.
func decide(name string, p Policy, regions, classes []string, w Workload, granted func(app, class string) bool) error {
	deny := func(format string, args ...any) error {
		return &Denied{Secret: name, Reason: fmt.Sprintf(format, args...)}
	}
	if !slices.ContainsFunc(p.SPIFFEIDs, func(g string) bool { return MatchID(g, w.ID) }) {
		return deny("identity %s matches none of the policy's SPIFFE IDs", w.ID)
	}
	if p.CertifiedUnder != "" && !slices.Contains(w.Certified, p.CertifiedUnder) {
		return deny("image %s is not certified under policy %q", w.Digest, p.CertifiedUnder)
	}
	if p.NoDrift && w.Drifted {
		return deny("the workload drifted (ran something outside its allowlist)")
	}
	if p.TEE != "" && w.TEE != p.TEE {
		have := w.TEE
		if have == "" {
			have = "none"
		}
		return deny("the workload holds no %s attestation (has: %s)", p.TEE, have)
	}
	if regions != nil && !slices.Contains(regions, w.Region) {
		where := w.Region
		if where == "" {
			where = "unknown"
		}
		return deny("node %s is in region %s, allowed: %s", w.Node, where, strings.Join(regions, ", "))
	}
	if p.RequireGrant {
		for _, c := range classes {
			if w.Application == "" || !granted(w.Application, c) {
				return deny("application %q is not granted data class %s", w.Application, c)
			}
		}
	}
	return nil
}
