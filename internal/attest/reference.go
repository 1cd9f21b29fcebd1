package attest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// ReferencePredicateType is the in-toto predicate type of the signed
// statement recording an image's expected TEE measurements.
const ReferencePredicateType = "https://bulwark.dev/attestations/tee-reference/v1"

// Reference is one set of expected values: what an instance of the image
// must measure in one kind of TEE. Empty fields are not checked.
type Reference struct {
	Kind Kind `json:"kind"`
	// Measurement: SNP launch MEASUREMENT, TDX MRTD, SGX MRENCLAVE.
	Measurement Hex `json:"measurement,omitempty"`
	// HostData: SNP HOST_DATA or TDX MRCONFIGID.
	HostData Hex `json:"hostData,omitempty"`
	// RTMRs: TDX RTMR0-3; an empty entry is not checked.
	RTMRs []Hex `json:"rtmrs,omitempty"`
	// Signer: SGX MRSIGNER or SNP ID key digest.
	Signer Hex `json:"signer,omitempty"`
	// ProductID: SGX ISVPRODID.
	ProductID *uint16 `json:"productId,omitempty"`
}

// ReferencePredicate is the attestation's predicate: the reference values
// and the image's own policy (acceptable kinds, minimum TCB and SVN,
// signers), which applies on top of the server's.
type ReferencePredicate struct {
	References []Reference `json:"references"`
	Policy     *Policy     `json:"policy,omitempty"`
}

// Validate checks that a predicate says something checkable.
func (p *ReferencePredicate) Validate() error {
	if len(p.References) == 0 {
		return fmt.Errorf("reference predicate lists no references")
	}
	for i, r := range p.References {
		if _, err := ParseKind(string(r.Kind)); err != nil {
			return fmt.Errorf("reference %d: %w", i, err)
		}
		if len(r.Measurement) == 0 && len(r.Signer) == 0 {
			return fmt.Errorf("reference %d (%s) has neither measurement nor signer", i, r.Kind)
		}
		if len(r.RTMRs) > 4 {
			return fmt.Errorf("reference %d has %d RTMRs, TDX has 4", i, len(r.RTMRs))
		}
	}
	if p.Policy != nil {
		return p.Policy.validate()
	}
	return nil
}

// Kinds lists the TEE kinds the predicate has reference values for.
func (p *ReferencePredicate) Kinds() []Kind {
	var out []Kind
	for _, r := range p.References {
		if !slices.Contains(out, r.Kind) {
			out = append(out, r.Kind)
		}
	}
	return out
}

// ParseReferencePredicate decodes and validates a predicate; unknown
// fields are errors.
func ParseReferencePredicate(b []byte) (*ReferencePredicate, error) {
	var p ReferencePredicate
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("parsing reference predicate: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// match reports why res does not match r, or "" when it does.
func (r *Reference) match(res *Result) string {
	switch {
	case r.Kind != res.Kind:
		return "kind " + string(r.Kind)
	case len(r.Measurement) > 0 && !eq(r.Measurement, res.Measurement):
		return "measurement " + r.Measurement.String()
	case len(r.HostData) > 0 && !eq(r.HostData, res.HostData):
		return "host data " + r.HostData.String()
	case len(r.Signer) > 0 && !eq(r.Signer, res.Signer):
		return "signer " + r.Signer.String()
	case r.ProductID != nil && *r.ProductID != res.ProductID:
		return fmt.Sprintf("product ID %d", *r.ProductID)
	}
	for i, m := range r.RTMRs {
		if len(m) > 0 && (i >= len(res.RTMRs) || !eq(m, res.RTMRs[i])) {
			return fmt.Sprintf("RTMR%d %s", i, m)
		}
	}
	return ""
}

// MatchReferences accepts res when one reference matches it.
func MatchReferences(res *Result, refs []Reference) error {
	var why []string
	for i := range refs {
		w := refs[i].match(res)
		if w == "" {
			return nil
		}
		why = append(why, w)
	}
	return refuse(res.Kind, ReasonMeasurement, nil, "measurement %s matches none of %d reference value sets (wanted %v)", res.Measurement, len(refs), why)
}

func jsonMarshal(p *ReferencePredicate) ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encoding reference predicate: %w", err)
	}
	return b, nil
}
