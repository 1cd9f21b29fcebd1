package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the length of a key in bytes.
const KeySize = 32

// EnvKey is the environment variable that may hold the key, base64.
const EnvKey = "BULWARK_SECRET_KEY"

// version prefixes every sealed value so the format can change.
const version byte = 1

// ErrOpen is returned when a sealed value does not open with the key: a
// different key, a corrupted value or one sealed for another row.
var ErrOpen = errors.New("sealed value does not open with this key (wrong key, or tampered)")

// Key seals and opens values.
type Key struct{ aead cipher.AEAD }

// New returns the Key of raw, which must be KeySize bytes.
func New(raw []byte) (*Key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("secret key is %d bytes, want %d", len(raw), KeySize)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Key{aead: aead}, nil
}

// Parse decodes a base64 key (standard or URL alphabet, padded or not), as
// a key file or BULWARK_SECRET_KEY holds it.
func Parse(text string) (*Key, error) {
	text = strings.TrimSpace(text)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err := enc.DecodeString(text); err == nil {
			return New(raw)
		}
	}
	return nil, errors.New("secret key is not base64")
}

// Load returns the key from file when it is set, else from $BULWARK_SECRET_KEY
// when set, else from defaultFile, creating defaultFile (0600, a new random
// key) when it does not exist. A key file readable by group or others is
// refused.
func Load(file, defaultFile string) (*Key, error) {
	if file != "" {
		return readFile(file)
	}
	if v := os.Getenv(EnvKey); v != "" {
		k, err := Parse(v)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", EnvKey, err)
		}
		return k, nil
	}
	k, err := readFile(defaultFile)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	return create(defaultFile)
}

func readFile(path string) (*Key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading secret key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secret key %s has mode %v: must not be readable by group or others (chmod 600)", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading secret key: %w", err)
	}
	k, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("reading secret key %s: %w", path, err)
	}
	return k, nil
}

// create writes a new random key to path (0600), failing if it exists.
func create(path string) (*Key, error) {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating secret key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating secret key: %w", err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return nil, fmt.Errorf("writing secret key %s: %w", path, werr)
	}
	return New(raw)
}

// Seal encrypts plaintext bound to context (the row it belongs to, e.g.
// "registry:ghcr"). An empty plaintext seals to nil.
func (k *Key) Seal(plaintext []byte, context string) ([]byte, error) {
	if len(plaintext) == 0 {
		return nil, nil
	}
	out := make([]byte, 1+k.aead.NonceSize(), 1+k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	out[0] = version
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return k.aead.Seal(out, out[1:], plaintext, []byte(context)), nil
}

// Open decrypts a value Seal returned for the same context. nil opens to
// nil.
func (k *Key) Open(sealed []byte, context string) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, nil
	}
	n := k.aead.NonceSize()
	if len(sealed) < 1+n+k.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	pt, err := k.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(context))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}
