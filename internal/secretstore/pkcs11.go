//go:build cgo

package secretstore

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/ThalesGroup/crypto11"
)

// PKCS11Config names a PKCS#11 token and the AES key on it that wraps the
// data keys.
type PKCS11Config struct {
	Module     string // the PKCS#11 library (/usr/lib/softhsm/libsofthsm2.so)
	TokenLabel string
	PIN        string // the user PIN; never logged
	KeyLabel   string // the AES-256 key's CKA_LABEL
	// Create generates the key on the token (sensitive, not extractable)
	// when no key has KeyLabel.
	Create bool
}

// PKCS11KEK wraps data keys with an AES-256 key that never leaves a
// PKCS#11 token (an HSM, or SoftHSM): AES-GCM computed by the token, a
// random 96-bit nonce per wrap stored in front of the wrapped key.
type PKCS11KEK struct {
	name string
	ctx  *crypto11.Context
	aead cipher.AEAD
}

var _ KEK = (*PKCS11KEK)(nil)

const gcmNonce = 12

// OpenPKCS11KEK logs in to the token of c and finds (or, with c.Create,
// generates) the key.
func OpenPKCS11KEK(c PKCS11Config) (*PKCS11KEK, error) {
	if c.Module == "" || c.TokenLabel == "" || c.KeyLabel == "" {
		return nil, errors.New("opening the PKCS#11 key: module, token label and key label are all required")
	}
	ctx, err := crypto11.Configure(&crypto11.Config{Path: c.Module, TokenLabel: c.TokenLabel, Pin: c.PIN, GCMIVLength: gcmNonce})
	if err != nil {
		// crypto11's errors name the module and token, never the PIN.
		return nil, fmt.Errorf("opening PKCS#11 token %q with %s: %w", c.TokenLabel, c.Module, err)
	}
	var key *crypto11.SecretKey
	keys, err := ctx.FindKeys(nil, []byte(c.KeyLabel))
	switch {
	case err == nil && len(keys) > 1:
		err = fmt.Errorf("%d keys are labelled %q: label one key only", len(keys), c.KeyLabel)
	case len(keys) == 1:
		key = keys[0]
	}
	if err == nil && key == nil && c.Create {
		id := make([]byte, 16)
		rand.Read(id)
		key, err = ctx.GenerateSecretKeyWithLabel(id, []byte(c.KeyLabel), 256, crypto11.CipherAES)
	}
	if err == nil && key == nil {
		err = fmt.Errorf("no key labelled %q (create it, or start once with the create option)", c.KeyLabel)
	}
	if err != nil {
		ctx.Close()
		return nil, fmt.Errorf("finding key %q on PKCS#11 token %q: %w", c.KeyLabel, c.TokenLabel, err)
	}
	aead, err := key.NewGCM()
	if err != nil {
		ctx.Close()
		return nil, fmt.Errorf("using key %q for AES-GCM: %w", c.KeyLabel, err)
	}
	return &PKCS11KEK{name: "pkcs11:" + c.KeyLabel, ctx: ctx, aead: aead}, nil
}

// Name is "pkcs11:<key label>".
func (p *PKCS11KEK) Name() string { return p.name }

// Wrap encrypts dataKey on the token, bound to context.
func (p *PKCS11KEK) Wrap(dataKey []byte, context string) (out []byte, err error) {
	nonce := make([]byte, gcmNonce)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	defer func() { // crypto11's Seal panics when the token fails
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("wrapping on the PKCS#11 token: %v", r)
		}
	}()
	return p.aead.Seal(nonce, nonce, dataKey, []byte("kek:"+context)), nil
}

// Unwrap decrypts a wrapped data key on the token.
func (p *PKCS11KEK) Unwrap(wrapped []byte, context string) ([]byte, error) {
	if len(wrapped) < gcmNonce+16 {
		return nil, errors.New("unwrapping on the PKCS#11 token: the wrapped key is too short")
	}
	dk, err := p.aead.Open(nil, wrapped[:gcmNonce], wrapped[gcmNonce:], []byte("kek:"+context))
	if err != nil {
		return nil, fmt.Errorf("unwrapping on the PKCS#11 token: %w", err)
	}
	return dk, nil
}

// Close logs out of the token.
func (p *PKCS11KEK) Close() error { return p.ctx.Close() }
