package attest

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/google/go-tdx-guest/pcs"
)

// sgxCollateral is SGX collateral checked once when the Verifier is built:
// TCB info and QE identity signatures and chains, and the PCK CRL.
type sgxCollateral struct {
	parsedIntel
	pckCRL *x509.RevocationList
}

// loadPCKCRL parses the collateral's PCK CRL and checks its signature by
// its issuer, chained to the trusted root.
func (v *Verifier) loadPCKCRL(c *IntelCollateral, now time.Time) (*x509.RevocationList, error) {
	der := c.PCKCRL
	if h, err := hex.DecodeString(string(bytes.TrimSpace(der))); err == nil {
		der = h // PCS serves the CRL as hex when asked for "der" on some endpoints
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("parsing PCK CRL: %w", err)
	}
	chain, err := parsePEMChain(c.PCKCRLChain)
	if err != nil {
		return nil, fmt.Errorf("parsing PCK CRL issuer chain: %w", err)
	}
	if err := checkCertChain(SGX, chain[0], chain[1:], v.intelRoot, now); err != nil {
		return nil, err
	}
	if err := crl.CheckSignatureFrom(chain[0]); err != nil {
		return nil, fmt.Errorf("PCK CRL signature: %w", err)
	}
	return crl, nil
}

func (v *Verifier) loadSGX(c *IntelCollateral) (*sgxCollateral, error) {
	p, err := parseIntel(c)
	if err != nil {
		return nil, err
	}
	now := v.now()
	if err := verifyPCSDocument(SGX, c.TCBInfo, c.TCBInfoChain, "tcbInfo", v.intelRoot, now); err != nil {
		return nil, err
	}
	if err := verifyPCSDocument(SGX, c.QEIdentity, c.QEIdentityChain, "enclaveIdentity", v.intelRoot, now); err != nil {
		return nil, err
	}
	if p.tcb.TcbInfo.ID != "SGX" {
		return nil, fmt.Errorf("SGX collateral's TCB info is for %q", p.tcb.TcbInfo.ID)
	}
	crl, err := v.loadPCKCRL(c, now)
	if err != nil {
		return nil, err
	}
	return &sgxCollateral{parsedIntel: *p, pckCRL: crl}, nil
}

// verifySGX checks an SGX DCAP v3 quote: the PCK chain to the Intel root
// and the PCK CRL, the QE report's signature by the PCK key, the QE
// report's binding of the attestation key, the enclave report's signature
// by that key, the QE against the QE identity and the platform against the
// TCB info.
func (v *Verifier) verifySGX(ev *Evidence) (*Result, error) {
	q, err := ParseSGXQuote(ev.Data)
	if err != nil {
		return nil, refuse(SGX, ReasonMalformed, err, "parsing SGX quote")
	}
	col := v.sgx
	if col == nil {
		return nil, refuse(SGX, ReasonCollateralExpired, nil, "no SGX collateral (TCB info, QE identity, PCK CRL) supplied")
	}
	now := v.now()
	chain, err := checkIntelQuote(SGX, intelQuote{signed: ev.Data[:sgxSigOffset], quoteSig: q.ISVSig, attestKey: q.AttestKey,
		qeReport: &q.QEReport, qeReportSig: q.QEReportSig, qeAuthData: q.QEAuthData, pckChain: q.PCKChain}, v.intelRoot, now)
	if err != nil {
		return nil, err
	}
	pck := chain[0]
	if now.After(col.pckCRL.NextUpdate) {
		return nil, refuse(SGX, ReasonCollateralExpired, nil, "PCK CRL was due for update at %s", col.pckCRL.NextUpdate.Format(time.RFC3339))
	}
	if err := pckRevoked(SGX, col.pckCRL, pck.SerialNumber.Text(16)); err != nil {
		return nil, err
	}
	if err := checkQEIdentity(SGX, &col.qe.EnclaveIdentity, &q.QEReport, now, v.opts.Policy.TCBStatuses); err != nil {
		return nil, err
	}
	ext, err := pcs.PckCertificateExtensions(pck)
	if err != nil {
		return nil, refuse(SGX, ReasonMalformed, err, "reading PCK certificate's SGX extensions")
	}
	info := &col.tcb.TcbInfo
	if ext.FMSPC != info.Fmspc || ext.PCEID != info.PceID {
		return nil, refuse(SGX, ReasonTCBOutOfDate, nil, "platform FMSPC %s/PCEID %s has no TCB info (collateral is for %s/%s)", ext.FMSPC, ext.PCEID, info.Fmspc, info.PceID)
	}
	res := &Result{
		Kind:        SGX,
		Measurement: q.Report.MRENCLAVE,
		Signer:      q.Report.MRSIGNER,
		ProductID:   q.Report.ISVProdID,
		SVN:         uint32(q.Report.ISVSVN),
		ReportData:  q.Report.ReportData,
		Debug:       q.Report.Debug(),
		TCB: TCB{CPUSVN: ext.TCB.CPUSvnComponents, PCESVN: ext.TCB.PCESvn, FMSPC: ext.FMSPC, QEISVSVN: q.QEReport.ISVSVN,
			TCBEvalNum: info.TcbEvaluationDataNumber, PCKSerial: pck.SerialNumber.Text(16)},
		Platform: Hex(ext.FMSPC),
	}
	if err := RejudgeTCB(res, info, v.opts.Policy.TCBStatuses, now); err != nil {
		return nil, err
	}
	l, _ := intelTCBLevel(info, res.TCB, false)
	res.TCBStatus = string(l.TcbStatus)
	return res, nil
}

func checkQEIdentity(k Kind, id *pcs.EnclaveIdentity, qe *SGXReport, now time.Time, accepted []string) error {
	if now.After(id.NextUpdate) {
		return refuse(k, ReasonCollateralExpired, nil, "QE identity was due for update at %s", id.NextUpdate.Format(time.RFC3339))
	}
	if !eq(qe.MRSIGNER, id.Mrsigner.Bytes) || qe.ISVProdID != id.IsvProdID {
		return refuse(k, ReasonSignature, nil, "quoting enclave is not Intel's (MRSIGNER %x, ISVPRODID %d)", qe.MRSIGNER, qe.ISVProdID)
	}
	if len(id.MiscselectMask.Bytes) != 4 || len(id.Miscselect.Bytes) != 4 || len(id.AttributesMask.Bytes) != 16 || len(id.Attributes.Bytes) != 16 {
		return refuse(k, ReasonMalformed, nil, "QE identity masks have the wrong sizes")
	}
	var misc [4]byte
	misc[0], misc[1], misc[2], misc[3] = byte(qe.MiscSelect), byte(qe.MiscSelect>>8), byte(qe.MiscSelect>>16), byte(qe.MiscSelect>>24)
	for i := range 4 {
		if misc[i]&id.MiscselectMask.Bytes[i] != id.Miscselect.Bytes[i] {
			return refuse(k, ReasonPolicy, nil, "QE MISCSELECT does not match the QE identity")
		}
	}
	for i := range 16 {
		if qe.Attributes[i]&id.AttributesMask.Bytes[i] != id.Attributes.Bytes[i] {
			return refuse(k, ReasonPolicy, nil, "QE attributes do not match the QE identity")
		}
	}
	for _, l := range id.TcbLevels {
		if uint32(qe.ISVSVN) >= l.Tcb.Isvsvn {
			return judgeTCBStatus(k, l.TcbStatus, accepted)
		}
	}
	return refuse(k, ReasonTCBOutOfDate, nil, "QE ISVSVN %d is below every QE identity TCB level", qe.ISVSVN)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// pckRevoked refuses a PCK certificate (serial in hex) the CRL lists.
func pckRevoked(k Kind, crl *x509.RevocationList, serial string) error {
	if crl == nil || serial == "" {
		return nil
	}
	for _, rc := range crl.RevokedCertificateEntries {
		if rc.SerialNumber.Text(16) == serial {
			return refuse(k, ReasonTCBRevoked, nil, "PCK certificate %s revoked at %s", serial, rc.RevocationTime.Format(time.DateOnly))
		}
	}
	return nil
}
