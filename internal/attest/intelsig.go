package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"time"
)

// verifyP256 checks an Intel-style raw r||s ECDSA P-256 SHA-256 signature.
func verifyP256(pub *ecdsa.PublicKey, msg, sig []byte) bool {
	if pub == nil || len(sig) != 64 {
		return false
	}
	h := sha256.Sum256(msg)
	return ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
}

// signedBody splits a PCS response {"<field>":{...},"signature":"hex"}
// into the exact signed bytes and the signature.
func signedBody(doc []byte, field string) ([]byte, []byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, nil, fmt.Errorf("decoding %s document: %w", field, err)
	}
	var sigHex string
	if err := json.Unmarshal(m["signature"], &sigHex); err != nil {
		return nil, nil, fmt.Errorf("decoding %s signature: %w", field, err)
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil {
		return nil, nil, fmt.Errorf("decoding %s signature: %w", field, err)
	}
	if len(m[field]) == 0 {
		return nil, nil, fmt.Errorf("%s document has no %q", field, field)
	}
	return m[field], sig, nil
}

// verifyPCSDocument checks a TCB info or QE identity document's signature
// by its TCB signing certificate, and that certificate's chain to root.
func verifyPCSDocument(k Kind, doc, chainPEM []byte, field string, root *x509.Certificate, now time.Time) error {
	chain, err := parsePEMChain(chainPEM)
	if err != nil {
		return refuse(k, ReasonMalformed, err, "parsing %s issuer chain", field)
	}
	signer := chain[0]
	if err := checkCertChain(k, signer, chain[1:], root, now); err != nil {
		return err
	}
	body, sig, err := signedBody(doc, field)
	if err != nil {
		return refuse(k, ReasonMalformed, err, "reading %s", field)
	}
	pub, ok := signer.PublicKey.(*ecdsa.PublicKey)
	if !ok || !verifyP256(pub, body, sig) {
		return refuse(k, ReasonSignature, nil, "%s signature does not verify with its TCB signing certificate", field)
	}
	return nil
}

// checkCertChain verifies leaf up to the trusted root at now.
func checkCertChain(k Kind, leaf *x509.Certificate, inter []*x509.Certificate, root *x509.Certificate, now time.Time) error {
	for _, c := range append([]*x509.Certificate{leaf}, inter...) {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return refuse(k, ReasonCollateralExpired, nil, "certificate %q valid %s to %s", c.Subject.CommonName,
				c.NotBefore.Format(time.DateOnly), c.NotAfter.Format(time.DateOnly))
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	ip := x509.NewCertPool()
	for _, c := range inter {
		if !c.Equal(root) {
			ip.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: ip, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return refuse(k, ReasonRoot, err, "certificate %q does not chain to the trusted Intel root", leaf.Subject.CommonName)
	}
	return nil
}

// intelQuote is what SGX v3 and TDX v5 quotes share: a body signed by the
// attestation key, which the QE report binds, signed by the PCK key.
type intelQuote struct {
	signed, quoteSig, attestKey []byte
	qeReport                    *SGXReport
	qeReportSig, qeAuthData     []byte
	pckChain                    []byte
}

// checkIntelQuote verifies q's PCK chain (leaf, intermediate, root) to the
// trusted root at now, the QE report's signature by the PCK key, the QE
// report data's binding SHA-256(attestation key || QE auth data), and the
// quote signature by the attestation key. It returns the PCK chain.
func checkIntelQuote(k Kind, q intelQuote, root *x509.Certificate, now time.Time) ([]*x509.Certificate, error) {
	chain, err := parsePEMChain(q.pckChain)
	if err != nil || len(chain) != 3 {
		return nil, refuse(k, ReasonMalformed, err, "reading PCK certificate chain (want leaf, intermediate, root)")
	}
	if !chain[2].Equal(root) {
		return nil, refuse(k, ReasonRoot, nil, "PCK chain ends at %q, not the trusted Intel root", chain[2].Subject.CommonName)
	}
	if err := checkCertChain(k, chain[0], chain[1:2], root, now); err != nil {
		return nil, err
	}
	pckKey, ok := chain[0].PublicKey.(*ecdsa.PublicKey)
	if !ok || !verifyP256(pckKey, q.qeReport.Raw, q.qeReportSig) {
		return nil, refuse(k, ReasonSignature, nil, "QE report signature does not verify with the PCK key")
	}
	bind := sha256.Sum256(append(append([]byte(nil), q.attestKey...), q.qeAuthData...))
	if !eq(q.qeReport.ReportData[:32], bind[:]) || !allZero(q.qeReport.ReportData[32:]) {
		return nil, refuse(k, ReasonSignature, nil, "QE report does not bind the attestation key")
	}
	ak := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(q.attestKey[:32]), Y: new(big.Int).SetBytes(q.attestKey[32:])}
	if !verifyP256(ak, q.signed, q.quoteSig) {
		return nil, refuse(k, ReasonSignature, nil, "quote signature does not verify with the attestation key")
	}
	return chain, nil
}
