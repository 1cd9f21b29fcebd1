package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/seal"
)

// keyContext is the associated data the checkpoint key is sealed with.
const keyContext = "audit-checkpoint-key"

// PublicKeyPath is the public key file written next to the checkpoint key
// file at path: path with ".key" replaced by (or else followed by) ".pub".
func PublicKeyPath(path string) string {
	return strings.TrimSuffix(path, ".key") + ".pub"
}

// CheckpointKey returns the Ed25519 checkpoint key in the file at path,
// sealed with sk; when the file does not exist it creates a new key there
// (0600). Either way the public key is written to PublicKeyPath(path) when
// that file is missing, and must match it when present. The key file holds
// only the sealed seed: without sk it signs nothing. It is never stored in
// the database whose log it vouches for.
func CheckpointKey(path string, sk *seal.Key) (ed25519.PrivateKey, error) {
	key, err := readCheckpointKey(path, sk)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createCheckpointKey(path, sk)
	}
	if err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	pubPath := PublicKeyPath(path)
	switch have, err := ReadPublicKey(pubPath); {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.WriteFile(pubPath, MarshalPublicKey(pub), 0o644); err != nil {
			return nil, fmt.Errorf("writing the checkpoint public key %q: %w", pubPath, err)
		}
	case err != nil:
		return nil, err
	case !bytes.Equal(have, pub):
		return nil, fmt.Errorf("checking the checkpoint public key %q: it is key %s, not the checkpoint key's %s", pubPath, KeyID(have), KeyID(pub))
	}
	return key, nil
}

func readCheckpointKey(path string, sk *seal.Key) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading the checkpoint key %q: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("reading the checkpoint key %q: mode %v, must not be readable by group or others (chmod 600)", path, fi.Mode().Perm())
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the checkpoint key %q: %w", path, err)
	}
	sealed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(text)))
	if err != nil {
		return nil, fmt.Errorf("reading the checkpoint key %q: not base64: %w", path, err)
	}
	seed, err := sk.Open(sealed, keyContext)
	if err != nil {
		return nil, fmt.Errorf("opening the checkpoint key %q: %w", path, err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("opening the checkpoint key %q: %d bytes, want %d", path, len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func createCheckpointKey(path string, sk *seal.Key) (ed25519.PrivateKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	sealed, err := sk.Seal(seed, keyContext)
	if err != nil {
		return nil, fmt.Errorf("sealing the checkpoint key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating the checkpoint key %q: %w", path, err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(sealed) + "\n")
	if err := f.Sync(); werr == nil {
		werr = err
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		os.Remove(path)
		return nil, fmt.Errorf("writing the checkpoint key %q: %w", path, werr)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// MarshalPublicKey is pub as a PEM "PUBLIC KEY" block (PKIX).
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // an ed25519.PublicKey always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ReadPublicKey reads a checkpoint public key file (PEM, PKIX, Ed25519).
// The error wraps fs.ErrNotExist when there is no file.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the checkpoint public key %q: %w", path, err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("reading the checkpoint public key %q: want one PEM PUBLIC KEY block", path)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("reading the checkpoint public key %q: %w", path, err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("reading the checkpoint public key %q: a %T, want Ed25519", path, key)
	}
	return pub, nil
}
