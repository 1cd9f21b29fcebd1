package attest

import (
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	tdxvalidate "github.com/google/go-tdx-guest/validate"
)

// verifyTDXv5 checks a TDX v5 quote (TD report 1.0 or 1.5), which
// go-tdx-guest v0.3.1 cannot parse: the same chain and signatures as v4
// (PCK chain to Intel's root and the PCK CRL and root CRL, QE report
// signed by the PCK key and binding the attestation key, the quote's
// signature over header, body descriptor and TD report), then, with
// collateral, TCB info and TD_QE identity (their signatures, chains and
// dates), the TDX module's signer and attributes and the platform's TCB
// level by TEE_TCB_SVN.
func (v *Verifier) verifyTDXv5(ev *Evidence) (*Result, error) {
	q, err := ParseTDXQuoteV5(ev.Data)
	if err != nil {
		return nil, refuse(TDX, ReasonMalformed, err, "parsing TDX v5 quote")
	}
	now := v.now()
	if v.opts.TDX == nil && !v.opts.AllowMissingCollateral {
		return nil, refuse(TDX, ReasonCollateralExpired, nil, "no TDX collateral (TCB info, QE identity, CRLs) supplied")
	}
	chain, err := checkIntelQuote(TDX, intelQuote{signed: q.Signed, quoteSig: q.QuoteSig, attestKey: q.AttestKey,
		qeReport: &q.QEReport, qeReportSig: q.QEReportSig, qeAuthData: q.QEAuthData, pckChain: q.PCKChain}, v.intelRoot, now)
	if err != nil {
		return nil, err
	}
	ext, err := pcs.PckCertificateExtensions(chain[0])
	if err != nil {
		return nil, refuse(TDX, ReasonMalformed, err, "reading PCK certificate's SGX extensions")
	}
	body := &q.Body
	res := &Result{
		Kind:        TDX,
		Measurement: body.MRTD,
		HostData:    body.MRCONFIGID,
		ReportData:  body.ReportData,
		Debug:       body.TDAttributes[0]&1 != 0,
		TCBStatus:   "unevaluated",
		TCB: TCB{CPUSVN: ext.TCB.CPUSvnComponents, PCESVN: ext.TCB.PCESvn, TeeTCBSVN: body.TeeTCBSVN, FMSPC: ext.FMSPC,
			QEISVSVN: q.QEReport.ISVSVN, PCKSerial: chain[0].SerialNumber.Text(16), TeeTCBSVN2: body.TeeTCBSVN2},
		Platform:  Hex(ext.FMSPC),
		ServiceTD: body.MRSERVICETD,
	}
	for _, r := range body.RTMRs {
		res.RTMRs = append(res.RTMRs, r)
	}
	if v.opts.TDX != nil {
		if err := v.judgeTDXv5(q, chain, ext.PCEID, res, now); err != nil {
			return nil, err
		}
	}
	if res.Debug && !v.opts.Policy.AllowDebug {
		return nil, refuse(TDX, ReasonDebug, nil, "TD_ATTRIBUTES.DEBUG is set: the host can read and change the trust domain's memory")
	}
	// The TD report 1.0 part is v4's: go-tdx-guest's validation of the TD
	// attributes' and XFAM's fixed bits runs on it as a v4 quote.
	if err := tdxvalidate.TdxQuote(q.asV4(), &tdxvalidate.Options{}); err != nil {
		return nil, refuse(TDX, ReasonPolicy, err, "validating TD attributes and XFAM")
	}
	return res, nil
}

// asV4 is q's TD report 1.0 part as go-tdx-guest's v4 proto (header with
// version 4, the 584-byte report, the same signature data): for the
// library's field validation only, its signature is not v4's.
func (q *TDXQuoteV5) asV4() *pb.QuoteV4 {
	b := make([]byte, 0, len(q.Header)+tdxBodyTD10Size+len(q.Signed))
	b = append(append(b, q.Header...), q.Body.Raw[:tdxBodyTD10Size]...)
	binary.LittleEndian.PutUint16(b[0:2], 4)
	sd := q.signatureData()
	b = binary.LittleEndian.AppendUint32(b, uint32(len(sd)))
	b = append(b, sd...)
	p, err := quoteToProto(b)
	v4, ok := p.(*pb.QuoteV4)
	if err != nil || !ok {
		return &pb.QuoteV4{} // refused by the validation; the v5 parser checked every length already
	}
	return v4
}

// signatureData re-assembles the quote's signature data from its parts.
func (q *TDXQuoteV5) signatureData() []byte {
	var b []byte
	b = append(append(b, q.QuoteSig...), q.AttestKey...)
	inner := append(append(append([]byte(nil), q.QEReport.Raw...), q.QEReportSig...), byte(len(q.QEAuthData)), byte(len(q.QEAuthData)>>8))
	inner = append(inner, q.QEAuthData...)
	inner = binary.LittleEndian.AppendUint16(inner, sgxCertTypePCK)
	inner = binary.LittleEndian.AppendUint32(inner, uint32(len(q.PCKChain)))
	inner = append(inner, q.PCKChain...)
	b = binary.LittleEndian.AppendUint16(b, tdxCertTypeQEData)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(inner)))
	return append(b, inner...)
}

// judgeTDXv5 checks the TDX collateral and judges q's platform, TDX module
// and QE by it, setting res's TCB status and evaluation number.
func (v *Verifier) judgeTDXv5(q *TDXQuoteV5, chain []*x509.Certificate, pceID string, res *Result, now time.Time) error {
	c := v.opts.TDX
	if !v.tdxDocsOK.Load() || !now.Before(v.tdxUntil) {
		if err := verifyPCSDocument(TDX, c.TCBInfo, c.TCBInfoChain, "tcbInfo", v.intelRoot, now); err != nil {
			return err
		}
		if err := verifyPCSDocument(TDX, c.QEIdentity, c.QEIdentityChain, "enclaveIdentity", v.intelRoot, now); err != nil {
			return err
		}
		v.tdxDocsOK.Store(true)
	}
	crl := v.tdxCRL
	if crl == nil || now.After(crl.NextUpdate) {
		return refuse(TDX, ReasonCollateralExpired, nil, "the TDX collateral's PCK CRL is missing or due for update")
	}
	if err := pckRevoked(TDX, crl, res.TCB.PCKSerial); err != nil {
		return err
	}
	if len(c.RootCRL) > 0 {
		root, err := x509.ParseRevocationList(c.RootCRL)
		if err != nil || root.CheckSignatureFrom(v.intelRoot) != nil {
			return refuse(TDX, ReasonMalformed, err, "the root CRL does not parse or is not signed by the trusted Intel root")
		}
		if now.After(root.NextUpdate) {
			return refuse(TDX, ReasonCollateralExpired, nil, "root CRL was due for update at %s", root.NextUpdate.Format(time.RFC3339))
		}
		if err := pckRevoked(TDX, root, chain[1].SerialNumber.Text(16)); err != nil {
			return err
		}
	}
	info, qe := &v.tdx.tcb.TcbInfo, &v.tdx.qe.EnclaveIdentity
	if info.ID != "TDX" || qe.ID != "TD_QE" {
		return refuse(TDX, ReasonMalformed, nil, "TDX collateral's TCB info is for %q and QE identity for %q", info.ID, qe.ID)
	}
	if err := checkQEIdentity(TDX, qe, &q.QEReport, now, v.opts.Policy.TCBStatuses); err != nil {
		return err
	}
	if res.TCB.FMSPC != info.Fmspc || pceID != info.PceID {
		return refuse(TDX, ReasonTCBOutOfDate, nil, "platform FMSPC %s/PCEID %s has no TCB info (collateral is for %s/%s)", res.TCB.FMSPC, pceID, info.Fmspc, info.PceID)
	}
	if err := checkTDXModule(q, info, now, v.opts.Policy.TCBStatuses); err != nil {
		return err
	}
	res.TCB.TCBEvalNum = info.TcbEvaluationDataNumber
	if err := RejudgeTCB(res, info, v.opts.Policy.TCBStatuses, now); err != nil {
		return err
	}
	l, _ := intelTCBLevel(info, res.TCB, true)
	res.TCBStatus = string(l.TcbStatus)
	return nil
}

// checkTDXModule checks the TDX module's signer and SEAM attributes against
// the TCB info, and for a TDX module 1.5 or later (TEE_TCB_SVN[1] > 0) its
// identity "TDX_<major>" and that identity's TCB level by TEE_TCB_SVN[0].
func checkTDXModule(q *TDXQuoteV5, info *pcs.TcbInfo, now time.Time, accepted []string) error {
	signer, attrs, mask := info.TdxModule.Mrsigner.Bytes, info.TdxModule.Attributes.Bytes, info.TdxModule.AttributesMask.Bytes
	svn := q.Body.TeeTCBSVN
	var levels []pcs.TcbLevel
	if svn[1] > 0 {
		id := fmt.Sprintf("TDX_%02X", svn[1])
		found := false
		for _, m := range info.TdxModuleIdentities {
			if m.ID == id {
				signer, attrs, mask, levels, found = m.Mrsigner.Bytes, m.Attributes.Bytes, m.AttributesMask.Bytes, m.TcbLevels, true
			}
		}
		if !found {
			return refuse(TDX, ReasonTCBOutOfDate, nil, "TCB info has no TDX module identity %s", id)
		}
	}
	if !eq(q.Body.MRSIGNERSEAM, signer) {
		return refuse(TDX, ReasonSignature, nil, "TDX module signer MRSIGNERSEAM %x is not the TCB info's", q.Body.MRSIGNERSEAM)
	}
	if len(attrs) != 8 || len(mask) != 8 {
		return refuse(TDX, ReasonMalformed, nil, "TCB info's TDX module attributes have the wrong sizes")
	}
	for i := range 8 {
		if q.Body.SEAMAttributes[i]&mask[i] != attrs[i] {
			return refuse(TDX, ReasonPolicy, nil, "SEAM attributes %x do not match the TCB info's TDX module", q.Body.SEAMAttributes)
		}
	}
	if svn[1] == 0 {
		return nil
	}
	for _, l := range levels {
		if uint32(svn[0]) >= l.Tcb.Isvsvn {
			return judgeTCBStatus(TDX, l.TcbStatus, accepted)
		}
	}
	return refuse(TDX, ReasonTCBOutOfDate, nil, "TDX module SVN %d is below every level of its identity", svn[0])
}
