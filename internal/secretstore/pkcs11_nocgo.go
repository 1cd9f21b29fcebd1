//go:build !cgo

package secretstore

import "errors"

// PKCS11Config names a PKCS#11 token and the AES key on it that wraps the
// data keys.
type PKCS11Config struct {
	Module, TokenLabel, PIN, KeyLabel string
	Create                            bool
}

// PKCS11KEK needs cgo (the PKCS#11 module is a C library).
type PKCS11KEK struct{}

var errNoCgo = errors.New("opening the PKCS#11 key: this bulwark was built without cgo, which PKCS#11 needs")

// OpenPKCS11KEK fails: this bulwark was built without cgo.
func OpenPKCS11KEK(PKCS11Config) (*PKCS11KEK, error) { return nil, errNoCgo }

// Name is "pkcs11".
func (p *PKCS11KEK) Name() string { return "pkcs11" }

// Wrap fails.
func (p *PKCS11KEK) Wrap([]byte, string) ([]byte, error) { return nil, errNoCgo }

// Unwrap fails.
func (p *PKCS11KEK) Unwrap([]byte, string) ([]byte, error) { return nil, errNoCgo }

// Close does nothing.
func (p *PKCS11KEK) Close() error { return nil }
