package attest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	tdxvalidate "github.com/google/go-tdx-guest/validate"
	tdxverify "github.com/google/go-tdx-guest/verify"
)

// verifyTDX checks a TDX quote (v4; v5 in verifyTDXv5) with go-tdx-guest: the PCK chain to
// Intel's root, the QE report's signature by the PCK key and its binding of
// the attestation key, the quote's signature by the attestation key, and,
// with collateral, TCB info and TD_QE identity (their own signatures, chains
// and dates, the PCK CRL and root CRL) and the platform's TCB level.
func (v *Verifier) verifyTDX(ev *Evidence) (*Result, error) {
	if len(ev.Data) >= 2 && ev.Data[0] == tdxV5Version && ev.Data[1] == 0 {
		return v.verifyTDXv5(ev) // go-tdx-guest v0.3.1 parses v4 only
	}
	anyQuote, err := quoteToProto(ev.Data)
	if err != nil {
		return nil, refuse(TDX, ReasonMalformed, err, "parsing TDX quote")
	}
	quote, ok := anyQuote.(*pb.QuoteV4)
	if !ok {
		return nil, refuse(TDX, ReasonUnsupported, nil, "quote type %T", anyQuote)
	}
	now := v.now()
	base := tdxverify.Options{Now: now, TrustedRoots: v.intelPool}
	if v.opts.TDX == nil {
		if !v.opts.AllowMissingCollateral {
			return nil, refuse(TDX, ReasonCollateralExpired, nil, "no TDX collateral (TCB info, QE identity, CRLs) supplied")
		}
		if err := tdxverify.TdxQuote(quote, &base); err != nil {
			return nil, refuse(TDX, intelReason(err), err, "verifying quote")
		}
	} else if key, warm := v.tdxWarm(quote, now); warm {
		// The collateral's verdict on this platform, TDX module and QE is
		// remembered; the quote's signatures and PCK chain are not.
		if err := tdxverify.TdxQuote(quote, &base); err != nil {
			return nil, refuse(TDX, intelReason(err), err, "verifying quote")
		}
	} else {
		full := base
		full.GetCollateral, full.CheckRevocations, full.Getter = true, true, offlineGetter{v.opts.TDX}
		if err := tdxverify.TdxQuote(quote, &full); err != nil {
			// A signature or chain failure outranks a collateral verdict:
			// ask again without collateral to tell them apart.
			if sigErr := tdxverify.TdxQuote(quote, &base); sigErr != nil {
				return nil, refuse(TDX, intelReason(sigErr), sigErr, "verifying quote")
			}
			return nil, refuse(TDX, intelReason(err), err, "verifying quote against collateral")
		}
		v.tdxOK.Store(key, now)
	}
	body := quote.GetTdQuoteBody()
	res := &Result{
		Kind:        TDX,
		Measurement: body.GetMrTd(),
		HostData:    body.GetMrConfigId(),
		ReportData:  body.GetReportData(),
		Debug:       body.GetTdAttributes()[0]&1 != 0,
		TCBStatus:   "UpToDate",
	}
	for _, r := range body.GetRtmrs() {
		res.RTMRs = append(res.RTMRs, r)
	}
	if v.opts.TDX == nil {
		res.TCBStatus = "unevaluated"
	}
	if res.Debug && !v.opts.Policy.AllowDebug {
		return nil, refuse(TDX, ReasonDebug, nil, "TD_ATTRIBUTES.DEBUG is set: the host can read and change the trust domain's memory")
	}
	if err := tdxvalidate.TdxQuote(quote, &tdxvalidate.Options{}); err != nil {
		return nil, refuse(TDX, ReasonPolicy, err, "validating TD attributes and XFAM")
	}
	chain := quote.GetSignedData().GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain()
	if certs, err := parsePEMChain(chain); err == nil {
		if ext, err := pcs.PckCertificateExtensions(certs[0]); err == nil {
			res.TCB = TCB{CPUSVN: ext.TCB.CPUSvnComponents, PCESVN: ext.TCB.PCESvn, TeeTCBSVN: body.GetTeeTcbSvn(), FMSPC: ext.FMSPC,
				PCKSerial: certs[0].SerialNumber.Text(16)}
			res.Platform = Hex(ext.FMSPC)
		}
	}
	return res, nil
}

// quoteToProto is go-tdx-guest's v4 parser, which in v0.3.1 panics on a
// quote whose signed data size is below 134 (it slices the signature and
// attestation key out of fewer bytes): an attacker's quote must not take
// the server down, so a panic is a parse error.
func quoteToProto(b []byte) (q any, err error) {
	defer func() {
		if p := recover(); p != nil {
			q, err = nil, fmt.Errorf("go-tdx-guest's parser panicked: %v", p)
		}
	}()
	return abi.QuoteToProto(b)
}

// intelReason classifies go-tdx-guest's errors, which are strings (the
// library wraps with %v): the sentinels it exports are matched first.
func intelReason(err error) Reason {
	for _, e := range []error{tdxverify.ErrTcbInfoExpired, tdxverify.ErrQeIdentityExpired, tdxverify.ErrPCKCrlExpired,
		tdxverify.ErrRootCaCrlExpired, tdxverify.ErrPckLeafCertExpired, tdxverify.ErrRootCaCertExpired,
		tdxverify.ErrIntermediateCaCertExpired} {
		if errors.Is(err, e) || strings.Contains(err.Error(), e.Error()) {
			return ReasonCollateralExpired
		}
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "expired") || strings.Contains(s, "not yet valid"):
		return ReasonCollateralExpired
	case strings.Contains(s, "revoked") || strings.Contains(s, "Revoked"):
		return ReasonTCBRevoked
	case strings.Contains(s, "TCB"):
		return ReasonTCBOutOfDate
	case strings.Contains(s, "root cert") || strings.Contains(s, "Intermediate CA") || strings.Contains(s, "PCK leaf") ||
		strings.Contains(s, "PCK Certificate") || strings.Contains(s, "trusted public key") || strings.Contains(s, "unknown authority"):
		return ReasonRoot
	case strings.Contains(s, "signature") || strings.Contains(s, "verif") || strings.Contains(s, "QE report data") || strings.Contains(s, "attestation key"):
		return ReasonSignature
	}
	return ReasonMalformed
}

// tdxWarm reports whether the collateral already accepted a quote with
// everything the collateral judges equal to quote's (the PCK chain, so
// FMSPC, SVNs and revocation; TEE_TCB_SVN; the TDX module's signer and
// attributes; the QE report), at or before now and with all of the
// collateral still valid now. It returns the key to remember it by.
func (v *Verifier) tdxWarm(quote *pb.QuoteV4, now time.Time) ([32]byte, bool) {
	body := quote.GetTdQuoteBody()
	qe := quote.GetSignedData().GetCertificationData().GetQeReportCertificationData()
	raw, err := abi.EnclaveReportToAbiBytes(qe.GetQeReport())
	if err != nil {
		return [32]byte{}, false
	}
	h := sha256.New()
	for _, b := range [][]byte{qe.GetPckCertificateChainData().GetPckCertChain(), body.GetTeeTcbSvn(), body.GetMrSignerSeam(), body.GetSeamAttributes(), raw} {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	var key [32]byte
	h.Sum(key[:0])
	at, ok := v.tdxOK.Load(key)
	return key, ok && !now.Before(at.(time.Time)) && now.Before(v.tdxUntil)
}
