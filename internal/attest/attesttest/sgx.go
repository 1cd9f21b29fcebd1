package attesttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/google/go-tdx-guest/pcs"
)

// FMSPC and PCEID of the synthetic platform.
const (
	FMSPC = "00906ed50000"
	PCEID = "0000"
)

// SGXPlatform is a synthetic Intel PKI (root, PCK platform CA, TCB signing
// certificate, with Intel's common names, as go-tdx-guest requires, and
// organisation "Bulwark test"), one machine's PCK certificate and its
// quoting enclave. It makes SGX quotes and (TDXQuote) TDX quotes.
type SGXPlatform struct {
	Now                   time.Time
	RootKey, InterKey     *ecdsa.PrivateKey
	PCKKey, TCBKey, AKKey *ecdsa.PrivateKey
	Root, Inter, PCK, TCB *x509.Certificate
	// CPUSVN and PCESVN are the PCK certificate's TCB; QESVN the QE's ISVSVN.
	CPUSVN [16]byte
	PCESVN uint16
	QESVN  uint16
	serial int64
}

// QEMRSIGNER is the synthetic quoting enclave's signer.
var QEMRSIGNER = sha256.Sum256([]byte("test quoting enclave signer"))

func key() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// NewSGXPlatform makes a platform whose certificates are valid around now,
// with CPUSVN components all 5, PCESVN 11 and QE ISVSVN 8.
func NewSGXPlatform(now time.Time) (*SGXPlatform, error) {
	p := &SGXPlatform{Now: now, RootKey: key(), InterKey: key(), PCKKey: key(), TCBKey: key(), AKKey: key(), PCESVN: 11, QESVN: 8}
	for i := range p.CPUSVN[:8] {
		p.CPUSVN[i] = 5
	}
	var err error
	if p.Root, err = p.cert("Intel SGX Root CA", true, p.RootKey, nil, nil, nil); err != nil {
		return nil, err
	}
	if p.Inter, err = p.cert("Intel SGX PCK Platform CA", true, p.InterKey, p.Root, p.RootKey, nil); err != nil {
		return nil, err
	}
	if p.TCB, err = p.cert("Intel SGX TCB Signing", false, p.TCBKey, p.Root, p.RootKey, nil); err != nil {
		return nil, err
	}
	ext, err := p.sgxExtension()
	if err != nil {
		return nil, err
	}
	if p.PCK, err = p.cert("Intel SGX PCK Certificate", false, p.PCKKey, p.Inter, p.InterKey, ext); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *SGXPlatform) cert(cn string, ca bool, k *ecdsa.PrivateKey, parent *x509.Certificate, pk *ecdsa.PrivateKey, ext *pkix.Extension) (*x509.Certificate, error) {
	p.serial++
	t := &x509.Certificate{
		SerialNumber:          big.NewInt(p.serial),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Bulwark test"}},
		NotBefore:             p.Now.Add(-24 * time.Hour),
		NotAfter:              p.Now.Add(5 * 365 * 24 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  ca,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		SubjectKeyId:          []byte(cn)[:8],
		CRLDistributionPoints: []string{"https://example.invalid/crl"},
	}
	if ca {
		t.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	if ext != nil {
		t.ExtraExtensions = []pkix.Extension{*ext}
	}
	if parent == nil {
		parent, pk = t, k
	}
	der, err := x509.CreateCertificate(rand.Reader, t, parent, &k.PublicKey, pk)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", cn, err)
	}
	return x509.ParseCertificate(der)
}

type oidValue struct {
	ID    asn1.ObjectIdentifier
	Value any
}

// sgxExtension builds the PCK certificate's SGX extension (OID
// 1.2.840.113741.1.13.1) as go-tdx-guest's pcs package parses it.
func (p *SGXPlatform) sgxExtension() (*pkix.Extension, error) {
	tcb := make([]any, 0, 18)
	for i := range 16 {
		tcb = append(tcb, oidValue{append(append(asn1.ObjectIdentifier{}, pcs.OidTCB...), i+1), int(p.CPUSVN[i])})
	}
	tcb = append(tcb, oidValue{pcs.OidPCESvn, int(p.PCESVN)}, oidValue{pcs.OidCPUSvn, p.CPUSVN[:]})
	fmspc, _ := hex.DecodeString(FMSPC)
	pceid, _ := hex.DecodeString(PCEID)
	type tcbSeq struct {
		ID    asn1.ObjectIdentifier
		Value []any
	}
	val, err := asn1.Marshal([]any{
		oidValue{pcs.OidPPID, make([]byte, 16)},
		tcbSeq{pcs.OidTCB, tcb},
		oidValue{pcs.OidPCEID, pceid},
		oidValue{pcs.OidFMSPC, fmspc},
	})
	if err != nil {
		return nil, fmt.Errorf("encoding SGX extension: %w", err)
	}
	return &pkix.Extension{Id: pcs.OidSgxExtension, Value: val}, nil
}

// Level is one TCB info level: the minimum CPUSVN components and PCESVN,
// and the status Intel gives platforms at or above it.
type Level struct {
	CPUSVN byte // every one of the first 8 components
	PCESVN uint16
	Status string
}

// Collateral signs TCB info listing levels (newest first), a QE identity
// whose only level is UpToDate from ISVSVN 8, and an empty PCK CRL (or one
// revoking the PCK certificate), with evalNum as TCB evaluation data number.
func (p *SGXPlatform) Collateral(evalNum int, revokePCK bool, levels ...Level) (*attest.IntelCollateral, error) {
	if len(levels) == 0 {
		levels = []Level{{CPUSVN: 5, PCESVN: 11, Status: "UpToDate"}}
	}
	issue, next := p.Now.Add(-time.Hour), p.Now.Add(30*24*time.Hour)
	type comp struct {
		Svn byte `json:"svn"`
	}
	var tl []map[string]any
	for _, l := range levels {
		cs := make([]comp, 16)
		for i := range 8 {
			cs[i].Svn = l.CPUSVN
		}
		tl = append(tl, map[string]any{"tcb": map[string]any{"sgxtcbcomponents": cs, "pcesvn": l.PCESVN},
			"tcbDate": issue.Format(time.RFC3339), "tcbStatus": l.Status})
	}
	info, err := p.signDoc("tcbInfo", map[string]any{"id": "SGX", "version": 3, "issueDate": issue, "nextUpdate": next,
		"fmspc": FMSPC, "pceId": PCEID, "tcbType": 0, "tcbEvaluationDataNumber": evalNum, "tcbLevels": tl})
	if err != nil {
		return nil, err
	}
	qe, err := p.signDoc("enclaveIdentity", map[string]any{"id": "QE", "version": 2, "issueDate": issue, "nextUpdate": next,
		"tcbEvaluationDataNumber": evalNum, "miscselect": "00000000", "miscselectMask": "FFFFFFFF",
		"attributes": "11000000000000000000000000000000", "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
		"mrsigner": hex.EncodeToString(QEMRSIGNER[:]), "isvprodid": 1,
		"tcbLevels": []any{map[string]any{"tcb": map[string]any{"isvsvn": 8}, "tcbDate": issue.Format(time.RFC3339), "tcbStatus": "UpToDate"}}})
	if err != nil {
		return nil, err
	}
	crl, rootCRL, err := p.crls(evalNum, revokePCK)
	if err != nil {
		return nil, err
	}
	return &attest.IntelCollateral{
		TCBInfo: info, TCBInfoChain: pemChain(p.TCB, p.Root),
		QEIdentity: qe, QEIdentityChain: pemChain(p.TCB, p.Root),
		PCKCRL: crl, PCKCRLChain: pemChain(p.Inter, p.Root), RootCRL: rootCRL,
	}, nil
}

// crls makes the PCK CRL (revoking the platform's PCK when revokePCK)
// and the root CA CRL, valid for 30 days from an hour ago.
func (p *SGXPlatform) crls(evalNum int, revokePCK bool) ([]byte, []byte, error) {
	issue, next := p.Now.Add(-time.Hour), p.Now.Add(30*24*time.Hour)
	crlT := &x509.RevocationList{Number: big.NewInt(int64(evalNum)), ThisUpdate: issue, NextUpdate: next}
	if revokePCK {
		crlT.RevokedCertificateEntries = []x509.RevocationListEntry{{SerialNumber: p.PCK.SerialNumber, RevocationTime: issue}}
	}
	crl, err := x509.CreateRevocationList(rand.Reader, crlT, p.Inter, p.InterKey)
	if err != nil {
		return nil, nil, fmt.Errorf("creating PCK CRL: %w", err)
	}
	rootCRL, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: issue, NextUpdate: next}, p.Root, p.RootKey)
	if err != nil {
		return nil, nil, fmt.Errorf("creating root CRL: %w", err)
	}
	return crl, rootCRL, nil
}

func (p *SGXPlatform) signDoc(field string, body map[string]any) ([]byte, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	sig, err := signRS(p.TCBKey, raw)
	if err != nil {
		return nil, err
	}
	return []byte(fmt.Sprintf(`{%q:%s,"signature":%q}`, field, raw, hex.EncodeToString(sig))), nil
}

func signRS(k *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	h := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, k, h[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}

func pemChain(cs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range cs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// RootPEM is the synthetic Intel root, for attest.Options.IntelRoot.
func (p *SGXPlatform) RootPEM() []byte { return pemChain(p.Root) }

// Enclave is what a synthetic enclave report claims.
type Enclave struct {
	MRENCLAVE, MRSIGNER [32]byte
	ProductID, SVN      uint16
	Debug               bool
	ReportData          [64]byte
}

// Quote makes an SGX DCAP v3 quote for e, signed through the platform's
// QE and PCK keys.
func (p *SGXPlatform) Quote(e Enclave) ([]byte, error) {
	hdr := make([]byte, 48)
	binary.LittleEndian.PutUint16(hdr[0:], 3)
	binary.LittleEndian.PutUint16(hdr[2:], 2)
	binary.LittleEndian.PutUint16(hdr[8:], p.QESVN)
	binary.LittleEndian.PutUint16(hdr[10:], p.PCESVN)
	copy(hdr[12:28], []byte("\x93\x9a\x72\x33\xf7\x9c\x4c\xa9\x94\x0a\x0d\xb3\x95\x7f\x06\x07")) // Intel QE vendor ID
	rep := report(p.CPUSVN[:], e.MRENCLAVE[:], e.MRSIGNER[:], e.ProductID, e.SVN, e.Debug, e.ReportData[:])
	isvSig, err := signRS(p.AKKey, append(append([]byte(nil), hdr...), rep...))
	if err != nil {
		return nil, err
	}
	ak := make([]byte, 64)
	p.AKKey.X.FillBytes(ak[:32])
	p.AKKey.Y.FillBytes(ak[32:])
	auth := []byte("bulwark-test-qe-auth-data-000000")
	bind := sha256.Sum256(append(append([]byte(nil), ak...), auth...))
	var qrd [64]byte
	copy(qrd[:], bind[:])
	qeRep := report(p.CPUSVN[:], make([]byte, 32), QEMRSIGNER[:], 1, p.QESVN, false, qrd[:])
	qeRep[48] |= 0x10 // attributes 0x11 as Intel's QE identity expects (INIT|MODE64BIT)
	qeSig, err := signRS(p.PCKKey, qeRep)
	if err != nil {
		return nil, err
	}
	chain := pemChain(p.PCK, p.Inter, p.Root)
	sig := append(append(append(append([]byte(nil), isvSig...), ak...), qeRep...), qeSig...)
	sig = binary.LittleEndian.AppendUint16(sig, uint16(len(auth)))
	sig = append(sig, auth...)
	sig = binary.LittleEndian.AppendUint16(sig, 5)
	sig = binary.LittleEndian.AppendUint32(sig, uint32(len(chain)))
	sig = append(sig, chain...)
	q := append(append([]byte(nil), hdr...), rep...)
	q = binary.LittleEndian.AppendUint32(q, uint32(len(sig)))
	return append(q, sig...), nil
}

func report(cpusvn, mrenclave, mrsigner []byte, prod, svn uint16, debug bool, rd []byte) []byte {
	r := make([]byte, 384)
	copy(r[0:16], cpusvn)
	r[48] = 0x01 // INIT
	if debug {
		r[48] |= 0x02
	}
	copy(r[64:96], mrenclave)
	copy(r[128:160], mrsigner)
	binary.LittleEndian.PutUint16(r[256:], prod)
	binary.LittleEndian.PutUint16(r[258:], svn)
	copy(r[320:384], rd)
	return r
}
