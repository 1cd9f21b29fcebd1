package sign

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
)

// Signer produces the signatures SignImage and AttestImage store. Sign
// returns an ASN.1 DER ECDSA signature over the SHA-256 digest of payload,
// which is what cosign verifies with an ECDSA public key. KeySigner is the
// implementation for key files; a KMS signer is another.
type Signer interface {
	Sign(ctx context.Context, payload []byte) ([]byte, error)
	PublicKey() crypto.PublicKey
}

// KeySigner signs with a private key held in memory.
type KeySigner struct {
	key *ecdsa.PrivateKey
}

var _ Signer = (*KeySigner)(nil)

// NewKeySigner returns a Signer for key.
func NewKeySigner(key *ecdsa.PrivateKey) *KeySigner { return &KeySigner{key: key} }

// LoadKeyFile reads a private key file (any format LoadPrivateKey reads)
// and returns a Signer for it.
func LoadKeyFile(path string, passphrase []byte) (*KeySigner, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading private key: %w", err)
	}
	key, err := LoadPrivateKey(b, passphrase)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	return NewKeySigner(key), nil
}

// Sign implements Signer.
func (s *KeySigner) Sign(ctx context.Context, payload []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, s.key, sum[:])
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return sig, nil
}

// PublicKey implements Signer.
func (s *KeySigner) PublicKey() crypto.PublicKey { return s.key.Public() }

// checkSignature reports whether sig is a valid ECDSA signature by pub over
// the SHA-256 digest of msg.
func checkSignature(pub crypto.PublicKey, msg, sig []byte) bool {
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return false
	}
	sum := sha256.Sum256(msg)
	return ecdsa.VerifyASN1(ec, sum[:], sig)
}
