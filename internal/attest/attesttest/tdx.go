package attesttest

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/bulwark-sec/bulwark/internal/attest"
)

// TD is what a synthetic TDX quote's TD report claims.
type TD struct {
	MRTD, MRConfigID [48]byte
	RTMRs            [4][48]byte
	ReportData       [64]byte
	Debug            bool
}

// TDXQuote makes a TDX v4 quote for td signed through the platform's
// attestation key, QE and PCK certificate. template is a real quote whose
// layout (header, TD report fields not set by td, QE report) is kept:
// every signature and the PCK chain are replaced by the platform's.
func (p *SGXPlatform) TDXQuote(template []byte, td TD) ([]byte, error) {
	anyQ, err := abi.QuoteToProto(template)
	if err != nil {
		return nil, fmt.Errorf("parsing the template quote: %w", err)
	}
	q, ok := anyQ.(*pb.QuoteV4)
	if !ok {
		return nil, fmt.Errorf("template is a %T, want a v4 quote", anyQ)
	}
	body := q.GetTdQuoteBody()
	body.MrTd, body.MrConfigId, body.ReportData = td.MRTD[:], td.MRConfigID[:], td.ReportData[:]
	body.Rtmrs = [][]byte{td.RTMRs[0][:], td.RTMRs[1][:], td.RTMRs[2][:], td.RTMRs[3][:]}
	attrs := append([]byte(nil), body.GetTdAttributes()...)
	attrs[0] &^= 1
	if td.Debug {
		attrs[0] |= 1
	}
	body.TdAttributes = attrs

	sd := q.GetSignedData()
	ak := make([]byte, 64)
	p.AKKey.X.FillBytes(ak[:32])
	p.AKKey.Y.FillBytes(ak[32:])
	sd.EcdsaAttestationKey = ak
	qe := sd.GetCertificationData().GetQeReportCertificationData()
	bind := sha256.Sum256(append(append([]byte(nil), ak...), qe.GetQeAuthData().GetData()...))
	rd := make([]byte, 64)
	copy(rd, bind[:])
	qe.GetQeReport().ReportData = rd
	rawQE, err := abi.EnclaveReportToAbiBytes(qe.GetQeReport())
	if err != nil {
		return nil, fmt.Errorf("encoding the QE report: %w", err)
	}
	if qe.QeReportSignature, err = signRS(p.PCKKey, rawQE); err != nil {
		return nil, err
	}
	chain := pemChain(p.PCK, p.Inter, p.Root)
	cc := qe.GetPckCertificateChainData()
	delta := uint32(len(chain)) - cc.GetSize()
	cc.PckCertChain, cc.Size = chain, uint32(len(chain))
	sd.GetCertificationData().Size += delta
	q.SignedDataSize += delta

	hdr, err := abi.HeaderToAbiBytes(q.GetHeader())
	if err != nil {
		return nil, fmt.Errorf("encoding the header: %w", err)
	}
	rawBody, err := abi.TdQuoteBodyToAbiBytes(body)
	if err != nil {
		return nil, fmt.Errorf("encoding the TD report: %w", err)
	}
	if sd.Signature, err = signRS(p.AKKey, append(hdr, rawBody...)); err != nil {
		return nil, err
	}
	return abi.QuoteToAbiBytes(q)
}

// TDXCollateral re-issues Intel's TDX TCB info and TD_QE identity
// (tcbInfo and qeIdentity are the real documents, whose TDX module and
// quoting enclave fields the template quote matches) for this platform:
// its FMSPC, dates around Now, and one TCB level at exactly the platform's
// PCK SVNs and the quote's TEE_TCB_SVN with status; signed by the
// platform's TCB signing key, with its CRLs.
func (p *SGXPlatform) TDXCollateral(tcbInfo, qeIdentity, teeTCBSVN []byte, evalNum int, status string) (*attest.IntelCollateral, error) {
	issue, next := p.Now.Add(-time.Hour).UTC().Format(time.RFC3339), p.Now.Add(30*24*time.Hour).UTC().Format(time.RFC3339)
	var info struct {
		TCBInfo map[string]any `json:"tcbInfo"`
	}
	if err := json.Unmarshal(tcbInfo, &info); err != nil {
		return nil, fmt.Errorf("reading TCB info: %w", err)
	}
	comps := func(svns []byte) []map[string]any {
		out := make([]map[string]any, len(svns))
		for i, s := range svns {
			out[i] = map[string]any{"svn": s}
		}
		return out
	}
	ti := info.TCBInfo
	ti["fmspc"], ti["pceId"], ti["issueDate"], ti["nextUpdate"], ti["tcbEvaluationDataNumber"] = FMSPC, PCEID, issue, next, evalNum
	ti["tcbLevels"] = []any{map[string]any{
		"tcb":     map[string]any{"sgxtcbcomponents": comps(p.CPUSVN[:]), "pcesvn": p.PCESVN, "tdxtcbcomponents": comps(teeTCBSVN)},
		"tcbDate": issue, "tcbStatus": status,
	}}
	infoDoc, err := p.signDoc("tcbInfo", ti)
	if err != nil {
		return nil, err
	}
	var qe struct {
		Identity map[string]any `json:"enclaveIdentity"`
	}
	if err := json.Unmarshal(qeIdentity, &qe); err != nil {
		return nil, fmt.Errorf("reading QE identity: %w", err)
	}
	qe.Identity["issueDate"], qe.Identity["nextUpdate"], qe.Identity["tcbEvaluationDataNumber"] = issue, next, evalNum
	qeDoc, err := p.signDoc("enclaveIdentity", qe.Identity)
	if err != nil {
		return nil, err
	}
	crl, rootCRL, err := p.crls(evalNum, false)
	if err != nil {
		return nil, err
	}
	return &attest.IntelCollateral{
		TCBInfo: infoDoc, TCBInfoChain: pemChain(p.TCB, p.Root),
		QEIdentity: qeDoc, QEIdentityChain: pemChain(p.TCB, p.Root),
		PCKCRL: crl, PCKCRLChain: pemChain(p.Inter, p.Root), RootCRL: rootCRL,
	}, nil
}
