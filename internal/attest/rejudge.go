package attest

import (
	"slices"
)

// Rejudge decides a recorded result against the verifier's collateral and
// policy without the evidence: what a new TCB info, a raised minimum SNP
// TCB, a narrower list of kinds or a higher minimum SVN makes of an
// instance verified earlier. It returns nil when the result still passes.
// Signatures and chains were checked when the result was made and do not
// change; what changes is the collateral's and the policy's verdict.
func (v *Verifier) Rejudge(res *Result) error {
	p := &v.opts.Policy
	if err := allowedKind(p, res.Kind); err != nil {
		return err
	}
	if err := p.check(res); err != nil {
		return err
	}
	switch res.Kind {
	case TDX, SGX:
		info := v.TCBInfo(res.Kind)
		if info == nil {
			if v.opts.AllowMissingCollateral {
				return nil
			}
			return refuse(res.Kind, ReasonCollateralExpired, nil, "no %s collateral to judge the platform's TCB by", res.Kind)
		}
		crl := v.tdxCRL
		if res.Kind == SGX {
			crl = v.sgx.pckCRL
		}
		if err := pckRevoked(res.Kind, crl, res.TCB.PCKSerial); err != nil {
			return err
		}
		accepted := p.TCBStatuses
		if res.Kind == TDX {
			accepted = nil // go-tdx-guest accepts UpToDate alone at verification
		}
		return RejudgeTCB(res, info, accepted, v.now())
	}
	return nil
}

// check applies an image's own policy (from its reference predicate) on
// top of the verifier's.
func (e *Expect) check(res *Result) error {
	if e.Policy == nil {
		return nil
	}
	if len(e.Policy.Kinds) > 0 && !slices.Contains(e.Policy.Kinds, res.Kind) {
		return refuse(res.Kind, ReasonPolicy, nil, "the image's policy accepts only %v", e.Policy.Kinds)
	}
	return e.Policy.check(res)
}
