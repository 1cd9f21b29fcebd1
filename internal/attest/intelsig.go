package attest

import (
	"crypto/ecdsa"
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
