package attest

import (
	"encoding/binary"
	"fmt"
)

// TDX quote v5 layout (Intel TDX DCAP Quoting Library API, "Quote Format",
// version 5): the 48-byte header, a body descriptor (type u16, size u32),
// the TD report (type 2: TD report 1.0, 584 bytes, as in v4; type 3: TD
// report 1.5, 648 bytes, adding TEE_TCB_SVN2 and MRSERVICETD), then the
// signature data length and the signature data as in v4: quote signature,
// attestation key, certification data of type 6 carrying the QE report,
// its signature, QE authentication data and the PCK chain (type 5).
const (
	tdxV5Version      = 5
	tdxTEETypeTDX     = 0x81
	tdxBodyTD10       = 2
	tdxBodyTD15       = 3
	tdxBodyTD10Size   = 584
	tdxBodyTD15Size   = 648
	tdxCertTypeQEData = 6
	tdxDescSize       = 6
)

// TDReport is a TD report body (1.0 or 1.5) as the quote carries it.
type TDReport struct {
	Raw            []byte // as signed
	TeeTCBSVN      []byte // 16
	MRSEAM         []byte
	MRSIGNERSEAM   []byte
	SEAMAttributes []byte // 8
	TDAttributes   []byte // 8
	XFAM           []byte // 8
	MRTD           []byte
	MRCONFIGID     []byte
	MROWNER        []byte
	MROWNERCONFIG  []byte
	RTMRs          [4][]byte
	ReportData     []byte // 64
	TeeTCBSVN2     []byte // 16, TD report 1.5 only
	MRSERVICETD    []byte // 48, TD report 1.5 only
}

// TDXQuoteV5 is a parsed TDX v5 quote.
type TDXQuoteV5 struct {
	Header      []byte // 48 bytes
	BodyType    uint16
	Signed      []byte // header, descriptor and body: what the attestation key signs
	Body        TDReport
	QuoteSig    []byte // r||s, 64
	AttestKey   []byte // x||y, 64
	QEReport    SGXReport
	QEReportSig []byte // r||s, 64
	QEAuthData  []byte
	PCKChain    []byte // PEM: leaf, intermediate, root
}

func parseTDReport(b []byte) TDReport {
	r := TDReport{Raw: b, TeeTCBSVN: b[0:16], MRSEAM: b[16:64], MRSIGNERSEAM: b[64:112], SEAMAttributes: b[112:120],
		TDAttributes: b[120:128], XFAM: b[128:136], MRTD: b[136:184], MRCONFIGID: b[184:232], MROWNER: b[232:280],
		MROWNERCONFIG: b[280:328], ReportData: b[520:584]}
	for i := range r.RTMRs {
		r.RTMRs[i] = b[328+48*i : 376+48*i]
	}
	if len(b) == tdxBodyTD15Size {
		r.TeeTCBSVN2, r.MRSERVICETD = b[584:600], b[600:648]
	}
	return r
}

// ParseTDXQuoteV5 parses a TDX v5 quote with an ECDSA-256 attestation key
// and QE report certification data. Every length is checked against the
// buffer; trailing bytes are an error.
func ParseTDXQuoteV5(b []byte) (*TDXQuoteV5, error) {
	const pre = sgxHeaderSize + tdxDescSize
	if len(b) < pre {
		return nil, fmt.Errorf("quote is %d bytes, shorter than header and body descriptor (%d)", len(b), pre)
	}
	if v := binary.LittleEndian.Uint16(b[0:2]); v != tdxV5Version {
		return nil, fmt.Errorf("quote version %d, want %d", v, tdxV5Version)
	}
	if k := binary.LittleEndian.Uint16(b[2:4]); k != sgxAttKeyECDSA256 {
		return nil, fmt.Errorf("attestation key type %d, want %d (ECDSA-256-with-P-256)", k, sgxAttKeyECDSA256)
	}
	if tee := binary.LittleEndian.Uint32(b[4:8]); tee != tdxTEETypeTDX {
		return nil, fmt.Errorf("TEE type %#x, want %#x (TDX)", tee, tdxTEETypeTDX)
	}
	q := &TDXQuoteV5{Header: b[:sgxHeaderSize], BodyType: binary.LittleEndian.Uint16(b[48:50])}
	size := binary.LittleEndian.Uint32(b[50:54])
	want := map[uint16]uint32{tdxBodyTD10: tdxBodyTD10Size, tdxBodyTD15: tdxBodyTD15Size}[q.BodyType]
	if want == 0 {
		return nil, fmt.Errorf("body type %d, want %d (TD report 1.0) or %d (TD report 1.5)", q.BodyType, tdxBodyTD10, tdxBodyTD15)
	}
	if size != want {
		return nil, fmt.Errorf("body type %d has size %d, want %d", q.BodyType, size, want)
	}
	end := pre + int(size)
	if len(b) < end+4 {
		return nil, fmt.Errorf("quote is %d bytes, shorter than header, body and signature length (%d)", len(b), end+4)
	}
	q.Signed, q.Body = b[:end], parseTDReport(b[pre:end])
	sigLen := int(binary.LittleEndian.Uint32(b[end : end+4]))
	sig := b[end+4:]
	if sigLen != len(sig) {
		return nil, fmt.Errorf("signature data length %d, %d bytes follow", sigLen, len(sig))
	}
	if len(sig) < 128+6 {
		return nil, fmt.Errorf("signature data is %d bytes, shorter than %d", len(sig), 128+6)
	}
	q.QuoteSig, q.AttestKey = sig[0:64], sig[64:128]
	if typ := binary.LittleEndian.Uint16(sig[128:130]); typ != tdxCertTypeQEData {
		return nil, fmt.Errorf("certification data type %d, want %d (QE report certification data)", typ, tdxCertTypeQEData)
	}
	cd := sig[134:]
	if n := int(binary.LittleEndian.Uint32(sig[130:134])); n != len(cd) {
		return nil, fmt.Errorf("certification data size %d, %d bytes follow", n, len(cd))
	}
	const fixed = sgxReportSize + 64 + 2
	if len(cd) < fixed {
		return nil, fmt.Errorf("QE report certification data is %d bytes, shorter than %d", len(cd), fixed)
	}
	q.QEReport, q.QEReportSig = parseSGXReport(cd[:sgxReportSize]), cd[sgxReportSize:sgxReportSize+64]
	authLen := int(binary.LittleEndian.Uint16(cd[fixed-2 : fixed]))
	rest := cd[fixed:]
	if len(rest) < authLen+6 {
		return nil, fmt.Errorf("QE authentication data (%d bytes) and PCK certification header overrun the quote", authLen)
	}
	q.QEAuthData, rest = rest[:authLen], rest[authLen:]
	if typ := binary.LittleEndian.Uint16(rest[0:2]); typ != sgxCertTypePCK {
		return nil, fmt.Errorf("inner certification data type %d, want %d (PCK certificate chain)", typ, sgxCertTypePCK)
	}
	if n := int(binary.LittleEndian.Uint32(rest[2:6])); n != len(rest)-6 {
		return nil, fmt.Errorf("PCK certification data size %d, %d bytes follow", n, len(rest)-6)
	}
	q.PCKChain = rest[6:]
	return q, nil
}
