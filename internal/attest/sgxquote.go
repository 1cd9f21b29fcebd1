package attest

import (
	"encoding/binary"
	"fmt"
)

// SGX DCAP quote v3 layout (Intel SGX ECDSA Quote Library reference,
// "Quote Format"): header, ISV enclave report body, then the ECDSA
// signature data with the QE report and the PCK certification data.
const (
	sgxHeaderSize     = 48
	sgxReportSize     = 384
	sgxSigOffset      = sgxHeaderSize + sgxReportSize // 432: signature data length
	sgxQuoteVersion   = 3
	sgxAttKeyECDSA256 = 2
	sgxCertTypePCK    = 5 // PCK certificate chain, PEM
	sgxAttrDebug      = 1 << 1
)

// SGXReport is an SGX enclave report body (ISV or QE).
type SGXReport struct {
	Raw        []byte // the 384 bytes as signed
	CPUSVN     []byte
	MiscSelect uint32
	Attributes []byte // 16: flags (LE u64) then XFRM
	MRENCLAVE  []byte
	MRSIGNER   []byte
	ISVProdID  uint16
	ISVSVN     uint16
	ReportData []byte
}

// Debug reports the DEBUG attribute.
func (r *SGXReport) Debug() bool {
	return binary.LittleEndian.Uint64(r.Attributes[:8])&sgxAttrDebug != 0
}

// SGXQuote is a parsed SGX DCAP v3 quote.
type SGXQuote struct {
	Header      []byte // 48 bytes
	QESVN       uint16
	PCESVN      uint16
	Report      SGXReport
	ISVSig      []byte // r||s, 64
	AttestKey   []byte // x||y, 64
	QEReport    SGXReport
	QEReportSig []byte // r||s, 64
	QEAuthData  []byte
	PCKChain    []byte // PEM: leaf, intermediate, root
}

func parseSGXReport(b []byte) SGXReport {
	return SGXReport{
		Raw:        b,
		CPUSVN:     b[0:16],
		MiscSelect: binary.LittleEndian.Uint32(b[16:20]),
		Attributes: b[48:64],
		MRENCLAVE:  b[64:96],
		MRSIGNER:   b[128:160],
		ISVProdID:  binary.LittleEndian.Uint16(b[256:258]),
		ISVSVN:     binary.LittleEndian.Uint16(b[258:260]),
		ReportData: b[320:384],
	}
}

// ParseSGXQuote parses an SGX DCAP v3 quote with ECDSA-256 attestation
// key and PCK certificate chain certification data. Every length is
// checked against the buffer; trailing bytes are an error.
func ParseSGXQuote(b []byte) (*SGXQuote, error) {
	if len(b) < sgxSigOffset+4 {
		return nil, fmt.Errorf("quote is %d bytes, shorter than header, report and signature length (%d)", len(b), sgxSigOffset+4)
	}
	if v := binary.LittleEndian.Uint16(b[0:2]); v != sgxQuoteVersion {
		return nil, fmt.Errorf("quote version %d, want %d", v, sgxQuoteVersion)
	}
	if k := binary.LittleEndian.Uint16(b[2:4]); k != sgxAttKeyECDSA256 {
		return nil, fmt.Errorf("attestation key type %d, want %d (ECDSA-256-with-P-256)", k, sgxAttKeyECDSA256)
	}
	if tee := binary.LittleEndian.Uint32(b[4:8]); tee != 0 {
		return nil, fmt.Errorf("TEE type %#x, want 0 (SGX)", tee)
	}
	q := &SGXQuote{
		Header: b[:sgxHeaderSize],
		QESVN:  binary.LittleEndian.Uint16(b[8:10]),
		PCESVN: binary.LittleEndian.Uint16(b[10:12]),
		Report: parseSGXReport(b[sgxHeaderSize:sgxSigOffset]),
	}
	sigLen := int(binary.LittleEndian.Uint32(b[sgxSigOffset : sgxSigOffset+4]))
	sig := b[sgxSigOffset+4:]
	if sigLen != len(sig) {
		return nil, fmt.Errorf("signature data length %d, %d bytes follow", sigLen, len(sig))
	}
	const fixed = 64 + 64 + sgxReportSize + 64 + 2
	if len(sig) < fixed {
		return nil, fmt.Errorf("signature data is %d bytes, shorter than %d", len(sig), fixed)
	}
	q.ISVSig, q.AttestKey = sig[0:64], sig[64:128]
	q.QEReport = parseSGXReport(sig[128 : 128+sgxReportSize])
	q.QEReportSig = sig[512:576]
	authLen := int(binary.LittleEndian.Uint16(sig[576:578]))
	rest := sig[578:]
	if len(rest) < authLen+6 {
		return nil, fmt.Errorf("QE authentication data (%d bytes) and certification header overrun the quote", authLen)
	}
	q.QEAuthData, rest = rest[:authLen], rest[authLen:]
	if typ := binary.LittleEndian.Uint16(rest[0:2]); typ != sgxCertTypePCK {
		return nil, fmt.Errorf("certification data type %d, want %d (PCK certificate chain)", typ, sgxCertTypePCK)
	}
	size := int(binary.LittleEndian.Uint32(rest[2:6]))
	if size != len(rest)-6 {
		return nil, fmt.Errorf("certification data size %d, %d bytes follow", size, len(rest)-6)
	}
	q.PCKChain = rest[6:]
	return q, nil
}
