package sign

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

// PEM block types of key files.
const (
	// EncryptedKeyPEMType is what cosign (v2) and Bulwark write: the
	// PKCS#8 DER of the private key, encrypted by
	// go-securesystemslib/encrypted (scrypt, then NaCl secretbox) as JSON.
	EncryptedKeyPEMType = "ENCRYPTED SIGSTORE PRIVATE KEY"
	// legacyEncryptedKeyPEMType is what cosign before v2 wrote; same body.
	legacyEncryptedKeyPEMType = "ENCRYPTED COSIGN PRIVATE KEY"
	pkcs8PEMType              = "PRIVATE KEY"
	ecPEMType                 = "EC PRIVATE KEY"
	publicKeyPEMType          = "PUBLIC KEY"
)

// ErrWrongPassphrase means an encrypted private key did not decrypt with
// the passphrase given.
var ErrWrongPassphrase = errors.New("wrong passphrase for the private key")

// GenerateKey makes an ECDSA P-256 key pair and returns the private key
// encrypted with passphrase in cosign's format and the public key as PKIX
// PEM. An empty passphrase still encrypts, as cosign does.
func GenerateKey(passphrase []byte) (privPEM, pubPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding private key: %w", err)
	}
	box, err := encrypted.Encrypt(der, passphrase)
	if err != nil {
		return nil, nil, fmt.Errorf("encrypting private key: %w", err)
	}
	pubPEM, err = MarshalPublicKey(key.Public())
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: EncryptedKeyPEMType, Bytes: box}), pubPEM, nil
}

// MarshalPublicKey encodes pub as a PKIX "PUBLIC KEY" PEM block.
func MarshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: publicKeyPEMType, Bytes: der}), nil
}

// LoadPrivateKey reads an ECDSA P-256 private key from PEM: cosign's
// encrypted format (decrypted with passphrase), or an unencrypted PKCS#8
// "PRIVATE KEY" or SEC 1 "EC PRIVATE KEY" block (passphrase unused).
func LoadPrivateKey(pemBytes, passphrase []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("reading private key: no PEM block found")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case EncryptedKeyPEMType, legacyEncryptedKeyPEMType:
		der, derr := encrypted.Decrypt(block.Bytes, passphrase)
		if derr != nil {
			// The library reports a failed secretbox open as "decryption
			// failed"; anything else is a malformed file.
			if derr.Error() == "encrypted: decryption failed" {
				return nil, ErrWrongPassphrase
			}
			return nil, fmt.Errorf("decrypting private key: %w", derr)
		}
		key, err = x509.ParsePKCS8PrivateKey(der)
	case pkcs8PEMType:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case ecPEMType:
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case publicKeyPEMType:
		return nil, errors.New("reading private key: this is a public key: give the private key (.key)")
	default:
		return nil, fmt.Errorf("reading private key: unsupported PEM type %q (want %q, %q or %q)", block.Type, EncryptedKeyPEMType, pkcs8PEMType, ecPEMType)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing private key: %w", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("reading private key: %T keys are not supported (want ECDSA P-256)", key)
	}
	if ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("reading private key: curve %s is not supported (want P-256)", ec.Curve.Params().Name)
	}
	return ec, nil
}

// LoadPublicKey reads an ECDSA P-256 public key from a PKIX "PUBLIC KEY"
// PEM block, as cosign writes to cosign.pub.
func LoadPublicKey(pemBytes []byte) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("reading public key: no PEM block found")
	}
	if strings.HasSuffix(block.Type, "PRIVATE KEY") {
		return nil, fmt.Errorf("reading public key: unsupported PEM type %q, a private key: give the public key (.pub)", block.Type)
	}
	if block.Type != publicKeyPEMType {
		return nil, fmt.Errorf("reading public key: unsupported PEM type %q (want %q)", block.Type, publicKeyPEMType)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing public key: %w", err)
	}
	ec, ok := key.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("reading public key: %T keys are not supported (want ECDSA P-256)", key)
	}
	if ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("reading public key: curve %s is not supported (want P-256)", ec.Curve.Params().Name)
	}
	return ec, nil
}
