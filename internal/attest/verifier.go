package attest

import (
	"bytes"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-sev-guest/verify/trust"
	"github.com/google/go-tdx-guest/pcs"
)

// Options configure a Verifier. Everything it trusts is here; nothing is
// fetched.
type Options struct {
	// Now pins the clock used for certificate and collateral validity; nil
	// means time.Now.
	Now func() time.Time
	// SNPRoots maps an AMD product line (Milan, Genoa, Turin) to its
	// ASK+ARK PEM chain. Nil means AMD's real roots as embedded in
	// go-sev-guest.
	SNPRoots map[string][]byte
	// VCEKs are DER VCEK certificates supplied ahead of time, used when the
	// evidence does not carry its own.
	VCEKs [][]byte
	// TDX and SGX are Intel collateral for the two quote kinds (TDX TCB info
	// and TD_QE identity; SGX TCB info and QE identity). Nil refuses the
	// kind unless AllowMissingCollateral.
	TDX, SGX *IntelCollateral
	// IntelRoot is the trusted Intel root certificate (PEM or DER); nil means
	// Intel's SGX Root CA as embedded in go-tdx-guest.
	IntelRoot []byte
	// AllowMissingCollateral verifies Intel quotes' signatures and PCK chain
	// only, without TCB status; results say TCBStatus "unevaluated". For
	// inspecting evidence, never for admitting it.
	AllowMissingCollateral bool
	Policy                 Policy
}

// Verifier verifies evidence against the collateral it was built with. It
// is safe for concurrent use.
type Verifier struct {
	opts      Options
	now       func() time.Time
	snpRoots  map[string][]*trust.AMDRootCerts
	intelRoot *x509.Certificate
	intelPool *x509.CertPool
	sgx       *sgxCollateral
	tdx       *parsedIntel
	tdxCRL    *x509.RevocationList

	// vceks remembers endorsement certificates whose chain already
	// verified (by DER digest), with the end of their validity: warm
	// collateral means one ECDSA verification per report.
	vceks sync.Map
	// tdxOK remembers TDX quotes' collateral verdicts (tdxWarm) until
	// tdxUntil, when the first part of the TDX collateral expires.
	tdxOK    sync.Map
	tdxUntil time.Time
	// tdxDocsOK is set once the TDX TCB info's and QE identity's
	// signatures and chains verified (for v5 quotes, which go-tdx-guest
	// does not check); their dates are then judged by tdxUntil.
	tdxDocsOK atomic.Bool
}

// New builds a Verifier, parsing the collateral once.
func New(opts Options) (*Verifier, error) {
	v := &Verifier{opts: opts, now: opts.Now}
	if v.now == nil {
		v.now = time.Now
	}
	if err := opts.Policy.validate(); err != nil {
		return nil, err
	}
	if opts.SNPRoots != nil {
		v.snpRoots = map[string][]*trust.AMDRootCerts{}
		for line, b := range opts.SNPRoots {
			r := trust.AMDRootCertsProduct(line)
			if err := r.FromKDSCertBytes(b); err != nil {
				return nil, fmt.Errorf("parsing %s ASK/ARK roots: %w", line, err)
			}
			v.snpRoots[line] = []*trust.AMDRootCerts{r}
		}
	}
	if err := v.loadIntelRoot(opts.IntelRoot); err != nil {
		return nil, err
	}
	var err error
	if opts.SGX != nil {
		if v.sgx, err = v.loadSGX(opts.SGX); err != nil {
			return nil, fmt.Errorf("parsing SGX collateral: %w", err)
		}
	}
	if opts.TDX != nil {
		if v.tdx, err = parseIntel(opts.TDX); err != nil {
			return nil, fmt.Errorf("parsing TDX collateral: %w", err)
		}
		if v.tdxCRL, err = v.loadPCKCRL(opts.TDX, v.now()); err != nil && ReasonOf(err) != ReasonCollateralExpired {
			return nil, fmt.Errorf("TDX collateral: %w", err)
		}
		v.tdxUntil = collateralUntil(opts.TDX, v.tdx)
	}
	return v, nil
}

func (v *Verifier) loadIntelRoot(b []byte) error {
	if b == nil {
		b = intelRootPEM
	}
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	c, err := x509.ParseCertificate(b)
	if err != nil {
		return fmt.Errorf("parsing Intel root certificate: %w", err)
	}
	v.intelRoot = c
	v.intelPool = x509.NewCertPool()
	v.intelPool.AddCert(c)
	return nil
}

func parseIntel(c *IntelCollateral) (*parsedIntel, error) {
	p := &parsedIntel{}
	if err := decodeStrict(c.TCBInfo, &p.tcb); err != nil {
		return nil, fmt.Errorf("decoding TCB info: %w", err)
	}
	if err := decodeStrict(c.QEIdentity, &p.qe); err != nil {
		return nil, fmt.Errorf("decoding QE identity: %w", err)
	}
	return p, nil
}

// Verify checks evidence against the collateral, the policy and want, and
// returns what it attests. A refusal is a *RefusedError.
func (v *Verifier) Verify(ev *Evidence, want Expect) (*Result, error) {
	if ev == nil || len(ev.Data) == 0 {
		return nil, refuse("", ReasonMalformed, nil, "no evidence")
	}
	if err := allowedKind(&v.opts.Policy, ev.Kind); err != nil {
		return nil, err
	}
	var res *Result
	var err error
	switch ev.Kind {
	case SNP:
		res, err = v.verifySNP(ev)
	case TDX:
		res, err = v.verifyTDX(ev)
	case SGX:
		res, err = v.verifySGX(ev)
	default:
		return nil, refuse(ev.Kind, ReasonUnsupported, nil, "unknown evidence kind")
	}
	if err != nil {
		return nil, err
	}
	if err := checkReportData(ev.Kind, res.ReportData, want.ReportData); err != nil {
		return nil, err
	}
	if err := v.opts.Policy.check(res); err != nil {
		return nil, err
	}
	if err := want.check(res); err != nil {
		return nil, err
	}
	if len(want.References) > 0 {
		if err := MatchReferences(res, want.References); err != nil {
			return nil, err
		}
	}
	res.Verified = v.now().UTC()
	return res, nil
}

// TDXTCBInfo and SGXTCBInfo expose the parsed TCB info for RejudgeTCB.
func (v *Verifier) TCBInfo(k Kind) *pcs.TcbInfo {
	switch {
	case k == TDX && v.tdx != nil:
		return &v.tdx.tcb.TcbInfo
	case k == SGX && v.sgx != nil:
		return &v.sgx.tcb.TcbInfo
	}
	return nil
}

// Policy returns the verifier's policy.
func (v *Verifier) Policy() Policy { return v.opts.Policy }

// intelRootPEM is Intel's SGX Root CA (the root of SGX and TDX PCK chains),
// copied from go-tdx-guest's verify/trusted_root.pem.
//
//go:embed intel_sgx_root_ca.pem
var intelRootPEM []byte

// collateralUntil is when the first part of c expires: TCB info or QE
// identity's next update, a CRL's next update, a certificate of an issuer
// chain. Zero (nothing is remembered) when a part cannot be read.
func collateralUntil(c *IntelCollateral, p *parsedIntel) time.Time {
	until := p.tcb.TcbInfo.NextUpdate
	earlier := func(t time.Time) {
		if t.Before(until) {
			until = t
		}
	}
	earlier(p.qe.EnclaveIdentity.NextUpdate)
	for _, der := range [][]byte{c.PCKCRL, c.RootCRL} {
		if h, err := hex.DecodeString(string(bytes.TrimSpace(der))); err == nil {
			der = h
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return time.Time{}
		}
		earlier(crl.NextUpdate)
	}
	for _, chain := range [][]byte{c.TCBInfoChain, c.QEIdentityChain, c.PCKCRLChain} {
		certs, err := parsePEMChain(chain)
		if err != nil {
			return time.Time{}
		}
		for _, cert := range certs {
			earlier(cert.NotAfter)
		}
	}
	return until
}
