package secretstore

import (
	"crypto/rand"
	"fmt"

	"github.com/bulwark-sec/bulwark/internal/seal"
)

// KEK wraps and unwraps data keys. Implementations keep the key material
// out of the database (a file, an environment variable, an HSM, a KMS).
// A KMS plug-in is one more implementation of this interface.
type KEK interface {
	// Name identifies the key in stored rows ("file", "pkcs11:bulwark-kek"),
	// so a version names the key that wrapped it.
	Name() string
	Wrap(dataKey []byte, context string) ([]byte, error)
	Unwrap(wrapped []byte, context string) ([]byte, error)
}

// FileKEK is a KEK from a key file or the BULWARK_SECRET_KEY environment
// variable (seal.Load): AES-256-GCM wrapping in the server's memory.
type FileKEK struct{ key *seal.Key }

var _ KEK = (*FileKEK)(nil)

// NewFileKEK returns the KEK of k.
func NewFileKEK(k *seal.Key) *FileKEK { return &FileKEK{key: k} }

// Name is "file".
func (f *FileKEK) Name() string { return "file" }

// Wrap seals dataKey bound to context.
func (f *FileKEK) Wrap(dataKey []byte, context string) ([]byte, error) {
	return f.key.Seal(dataKey, "kek:"+context)
}

// Unwrap opens a wrapped data key.
func (f *FileKEK) Unwrap(wrapped []byte, context string) ([]byte, error) {
	return f.key.Open(wrapped, "kek:"+context)
}

// envelope encrypts plaintext under a new data key wrapped by kek.
func envelope(kek KEK, plaintext []byte, context string) (wrapped, ciphertext []byte, err error) {
	dk := make([]byte, seal.KeySize)
	if _, err := rand.Read(dk); err != nil {
		return nil, nil, err
	}
	defer clear(dk)
	k, err := seal.New(dk)
	if err != nil {
		return nil, nil, err
	}
	if ciphertext, err = k.Seal(plaintext, context); err != nil {
		return nil, nil, fmt.Errorf("encrypting the value: %w", err)
	}
	if wrapped, err = kek.Wrap(dk, context); err != nil {
		return nil, nil, fmt.Errorf("wrapping the data key with %s: %w", kek.Name(), err)
	}
	return wrapped, ciphertext, nil
}

// open reverses envelope.
func open(kek KEK, wrapped, ciphertext []byte, context string) ([]byte, error) {
	dk, err := kek.Unwrap(wrapped, context)
	if err != nil {
		return nil, fmt.Errorf("unwrapping the data key with %s: %w", kek.Name(), err)
	}
	defer clear(dk)
	k, err := seal.New(dk)
	if err != nil {
		return nil, fmt.Errorf("unwrapping the data key with %s: %w", kek.Name(), err)
	}
	pt, err := k.Open(ciphertext, context)
	if err != nil {
		return nil, fmt.Errorf("decrypting the value: %w", err)
	}
	return pt, nil
}
