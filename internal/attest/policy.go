package attest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

// Policy is the operator's say over which evidence is acceptable, beyond
// what the vendor chain and the image's reference values already decide.
type Policy struct {
	// Kinds lists the acceptable TEE kinds; empty accepts all three.
	Kinds []Kind `json:"kinds,omitempty"`
	// AllowDebug accepts debug guests and enclaves (never in production:
	// the host can read their memory).
	AllowDebug bool `json:"allowDebug,omitempty"`
	// MinSNPTCB is the lowest acceptable SEV-SNP reported TCB. Raising it
	// after an AMD security bulletin is SNP's "new collateral".
	MinSNPTCB SNPTCB `json:"minSnpTcb,omitzero"`
	// MinSVN is the lowest acceptable SGX ISVSVN or SNP guest SVN.
	MinSVN uint32 `json:"minSvn,omitempty"`
	// TCBStatuses lists Intel SGX TCB statuses accepted besides UpToDate
	// (e.g. SWHardeningNeeded). Revoked is never accepted. TDX accepts
	// UpToDate alone (go-tdx-guest's rule).
	TCBStatuses []string `json:"tcbStatuses,omitempty"`
	// Signers, when set, lists the acceptable SGX MRSIGNERs / SNP ID key
	// digests.
	Signers []Hex `json:"signers,omitempty"`
	// AllowMigrationAgent accepts SNP guests whose policy allows a
	// migration agent; DenySMT refuses SNP guests that allow SMT.
	AllowMigrationAgent bool `json:"allowMigrationAgent,omitempty"`
	DenySMT             bool `json:"denySmt,omitempty"`
}

// LoadPolicy reads a policy file (YAML or JSON); unknown keys are errors.
func LoadPolicy(path string) (Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Policy{}, fmt.Errorf("reading TEE policy: %w", err)
	}
	return ParsePolicy(b)
}

// ParsePolicy parses a policy document (YAML or JSON).
func ParsePolicy(b []byte) (Policy, error) {
	var p Policy
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		return Policy{}, fmt.Errorf("parsing TEE policy: %w", err)
	}
	return p, p.validate()
}

func (p *Policy) validate() error {
	for _, k := range p.Kinds {
		if _, err := ParseKind(string(k)); err != nil {
			return fmt.Errorf("TEE policy: %w", err)
		}
	}
	for _, s := range p.TCBStatuses {
		if s == "Revoked" {
			return fmt.Errorf("TEE policy: tcbStatuses may not accept Revoked")
		}
	}
	return nil
}

// check applies the policy to a result the vendor chain already vouched for.
func (p *Policy) check(r *Result) error {
	if r.Debug && !p.AllowDebug {
		return refuse(r.Kind, ReasonDebug, nil, "debug %s: the host can read and change its memory", map[Kind]string{SNP: "guest", TDX: "trust domain", SGX: "enclave"}[r.Kind])
	}
	if r.Kind == SNP && r.TCB.SNP != nil && r.TCB.SNP.Below(p.MinSNPTCB) {
		return refuse(r.Kind, ReasonTCBOutOfDate, nil, "reported TCB %s is below the policy's minimum %s", r.TCB.SNP, p.MinSNPTCB)
	}
	if (r.Kind == SGX || r.Kind == SNP) && r.SVN < p.MinSVN {
		return refuse(r.Kind, ReasonPolicy, nil, "SVN %d is below the policy's minimum %d", r.SVN, p.MinSVN)
	}
	if len(p.Signers) > 0 {
		ok := false
		for _, s := range p.Signers {
			ok = ok || eq(s, r.Signer)
		}
		if !ok {
			return refuse(r.Kind, ReasonMeasurement, nil, "signer %x is not one the policy accepts", []byte(r.Signer))
		}
	}
	return nil
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	return dec.Decode(v)
}
