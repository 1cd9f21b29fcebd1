package attest

import (
	"bytes"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Kind names a TEE evidence format.
type Kind string

// The kinds verified here.
const (
	SNP Kind = "sev-snp"
	TDX Kind = "tdx"
	SGX Kind = "sgx"
)

// ParseKind accepts the canonical names and common spellings.
func ParseKind(s string) (Kind, error) {
	switch s {
	case "sev-snp", "snp", "sevsnp", "SEV-SNP":
		return SNP, nil
	case "tdx", "TDX":
		return TDX, nil
	case "sgx", "SGX":
		return SGX, nil
	}
	return "", fmt.Errorf("unknown TEE kind %q (want sev-snp, tdx or sgx)", s)
}

// Evidence is what an instance presents: the raw report or quote and, for
// SEV-SNP, the VCEK certificate the host's firmware returned with it.
// Its JSON form ({"kind","data","vcek","product"}, bytes base64) is the
// envelope the CLI and the API accept.
type Evidence struct {
	Kind Kind   `json:"kind"`
	Data []byte `json:"data"`
	// VCEK is the DER VCEK certificate (SEV-SNP only). Without it the
	// verifier looks for one supplied in its collateral.
	VCEK []byte `json:"vcek,omitempty"`
	// Product is the SEV-SNP product line (Milan, Genoa, Turin); empty means
	// the report's own CPUID (v3 reports) or Milan.
	Product string `json:"product,omitempty"`
}

// ParseEvidence reads the JSON envelope.
func ParseEvidence(b []byte) (*Evidence, error) {
	var ev Evidence
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return nil, fmt.Errorf("parsing evidence envelope: %w", err)
	}
	if _, err := ParseKind(string(ev.Kind)); err != nil {
		return nil, err
	}
	if len(ev.Data) == 0 {
		return nil, fmt.Errorf("evidence envelope has no data")
	}
	return &ev, nil
}

// Result is what verified evidence attests, in one shape for all kinds.
type Result struct {
	Kind Kind `json:"kind"`
	// Measurement: SEV-SNP MEASUREMENT, TDX MRTD, SGX MRENCLAVE.
	Measurement Hex `json:"measurement"`
	// RTMRs are TDX's runtime measurement registers 0-3.
	RTMRs []Hex `json:"rtmrs,omitempty"`
	// HostData: SEV-SNP HOST_DATA, TDX MRCONFIGID (set by the host at launch).
	HostData Hex `json:"hostData,omitempty"`
	// Signer: SGX MRSIGNER; SEV-SNP ID key digest (zero without an ID block).
	Signer Hex `json:"signer,omitempty"`
	// ProductID and SVN: SGX ISVPRODID/ISVSVN; SEV-SNP guest SVN.
	ProductID  uint16 `json:"productId,omitempty"`
	SVN        uint32 `json:"svn"`
	ReportData Hex    `json:"reportData"`
	Debug      bool   `json:"debug"`
	// TCB is the platform's TCB in the vendor's terms, and TCBStatus the
	// collateral's verdict on it ("UpToDate", or for SNP "reported").
	TCB       TCB    `json:"tcb"`
	TCBStatus string `json:"tcbStatus"`
	// Platform identifies the machine: SNP chip ID, Intel FMSPC.
	Platform Hex       `json:"platform,omitempty"`
	Verified time.Time `json:"verified"`
	// ServiceTD is a TDX v5 TD report 1.5's MRSERVICETD: the measurement
	// of the service TDs bound to the TD (e.g. a migration TD), all zero
	// when none is.
	ServiceTD Hex `json:"mrServiceTd,omitempty"`
}

// TCB carries the numbers a later collateral update is judged against
// without the evidence: SNP's reported TCB parts; Intel's PCK CPUSVN
// components, PCESVN and (TDX) TEE_TCB_SVN or (SGX) QE ISVSVN.
type TCB struct {
	SNP        *SNPTCB `json:"snp,omitempty"`
	CPUSVN     Hex     `json:"cpusvn,omitempty"`
	PCESVN     uint16  `json:"pcesvn,omitempty"`
	TeeTCBSVN  Hex     `json:"teeTcbSvn,omitempty"`
	FMSPC      string  `json:"fmspc,omitempty"`
	QEISVSVN   uint16  `json:"qeIsvSvn,omitempty"`
	TCBEvalNum int     `json:"tcbEvaluationDataNumber,omitempty"`
	// PCKSerial is the Intel PCK certificate's serial (hex), judged
	// against a later PCK CRL.
	PCKSerial string `json:"pckSerial,omitempty"`
	// TeeTCBSVN2 is a TDX v5 TD report 1.5's TEE_TCB_SVN2 (the TDX
	// module's SVN after a TD-preserving update): reported, not matched.
	TeeTCBSVN2 Hex `json:"teeTcbSvn2,omitempty"`
}

// SNPTCB is an AMD TCB version's security patch levels.
type SNPTCB struct {
	Bootloader uint8 `json:"bootloader" yaml:"bootloader"`
	TEE        uint8 `json:"tee" yaml:"tee"`
	SNP        uint8 `json:"snp" yaml:"snp"`
	Microcode  uint8 `json:"microcode" yaml:"microcode"`
}

// Below reports whether any part of t is below min's.
func (t SNPTCB) Below(min SNPTCB) bool {
	return t.Bootloader < min.Bootloader || t.TEE < min.TEE || t.SNP < min.SNP || t.Microcode < min.Microcode
}

func (t SNPTCB) String() string {
	return fmt.Sprintf("bl=%d tee=%d snp=%d ucode=%d", t.Bootloader, t.TEE, t.SNP, t.Microcode)
}

// Hex is bytes that read and write as lowercase hex in JSON and YAML.
type Hex []byte

func (h Hex) String() string { return hex.EncodeToString(h) }

// MarshalText implements encoding.TextMarshaler.
func (h Hex) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hex) UnmarshalText(b []byte) error {
	v, err := hex.DecodeString(string(b))
	if err != nil {
		return fmt.Errorf("decoding hex %q: %w", b, err)
	}
	*h = v
	return nil
}

// Expect is what the caller requires of this particular piece of evidence.
type Expect struct {
	// ReportData, when set, must equal the evidence's REPORT_DATA (zero
	// padded to 64 bytes): the server's nonce, or a hash binding nonce and key.
	ReportData []byte
	// References, when set, must contain one that the evidence matches.
	References []Reference
	// Policy, when set, is the image's own policy (from its reference
	// predicate), applied on top of the verifier's.
	Policy *Policy
}

func eq(a, b []byte) bool { return len(a) == len(b) && subtle.ConstantTimeCompare(a, b) == 1 }

func checkReportData(k Kind, got []byte, want []byte) error {
	if want == nil {
		return nil
	}
	if len(want) > 64 {
		return refuse(k, ReasonNonce, nil, "expected report data is %d bytes, more than 64", len(want))
	}
	var w [64]byte
	copy(w[:], want)
	if !eq(got, w[:]) {
		return refuse(k, ReasonNonce, nil, "REPORT_DATA %x does not bind the expected %x", got, w)
	}
	return nil
}

func allowedKind(p *Policy, k Kind) error {
	if len(p.Kinds) > 0 && !slices.Contains(p.Kinds, k) {
		return refuse(k, ReasonPolicy, nil, "policy accepts only %v", p.Kinds)
	}
	return nil
}

// Binding is the REPORT_DATA an instance's evidence carries for a
// server's nonce and (optionally) the public key it wants secrets sealed
// to: SHA-512("bulwark-tee-v1\x00" || nonce || publicKey).
func Binding(nonce, publicKey []byte) []byte {
	h := sha512.New()
	h.Write([]byte("bulwark-tee-v1\x00"))
	h.Write(nonce)
	h.Write(publicKey)
	return h.Sum(nil)
}
