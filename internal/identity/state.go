package identity

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bulwark-sec/bulwark/internal/seal"
)

// Files of an identity directory (the server's <data-dir>/identity, or
// the operator's offline root directory).
const (
	RootCertFile = "root.crt" // PEM, public: the bundle's root
	RootKeyFile  = "root.key" // sealed; absent when the root is kept offline
	StateFile    = "state.json"
)

// sealed is how a key is written: sealed with the server's secret key,
// bound to what it is, so a sealed root key does not open as a JWT key.
type sealedKey struct {
	Context string `json:"context"`
	Sealed  []byte `json:"sealed"`
}

// State is what the server keeps between runs: the intermediate and the JWT
// keys, sealed.
type State struct {
	Intermediate *CA
	JWTKeys      []JWTKey
}

type stateFile struct {
	Version      int          `json:"version"`
	Intermediate string       `json:"intermediate"` // PEM certificate
	IntKey       sealedKey    `json:"intermediateKey"`
	JWTKeys      []jwtKeyFile `json:"jwtKeys"`
}

type jwtKeyFile struct {
	ID        string    `json:"id"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	Key       sealedKey `json:"key"`
}

// State returns what Save keeps of the authority.
func (a *Authority) State() State {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return State{Intermediate: a.intermediate, JWTKeys: append([]JWTKey(nil), a.jwtKeys...)}
}

func sealKey(k *seal.Key, key *ecdsa.PrivateKey, context string) (sealedKey, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return sealedKey{}, fmt.Errorf("encoding the %s: %w", context, err)
	}
	b, err := k.Seal(der, context)
	if err != nil {
		return sealedKey{}, fmt.Errorf("sealing the %s: %w", context, err)
	}
	return sealedKey{Context: context, Sealed: b}, nil
}

func openKey(k *seal.Key, s sealedKey, context string) (*ecdsa.PrivateKey, error) {
	if s.Context != context {
		return nil, fmt.Errorf("opening the %s: the file holds a %q", context, s.Context)
	}
	der, err := k.Open(s.Sealed, context)
	if err != nil {
		return nil, fmt.Errorf("opening the %s: %w", context, err)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("reading the %s: %w", context, err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("reading the %s: a %T, want ECDSA", context, key)
	}
	return ec, nil
}

// SaveState writes st to dir/state.json (0600), keys sealed with k.
func SaveState(dir string, k *seal.Key, st State) error {
	if st.Intermediate == nil {
		return errors.New("saving the identity state: no intermediate")
	}
	f := stateFile{Version: 1, Intermediate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: st.Intermediate.Cert.Raw}))}
	ik, ok := st.Intermediate.Key.(*ecdsa.PrivateKey)
	if !ok {
		return errors.New("saving the identity state: the intermediate key is not ECDSA")
	}
	var err error
	if f.IntKey, err = sealKey(k, ik, "identity intermediate key"); err != nil {
		return err
	}
	for _, j := range st.JWTKeys {
		s, err := sealKey(k, j.Key, "identity JWT key "+j.ID)
		if err != nil {
			return err
		}
		f.JWTKeys = append(f.JWTKeys, jwtKeyFile{ID: j.ID, NotBefore: j.NotBefore, NotAfter: j.NotAfter, Key: s})
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, StateFile), b)
}

// LoadState reads dir/state.json; (State{}, nil) when there is none.
func LoadState(dir string, k *seal.Key) (State, error) {
	b, err := readPrivate(filepath.Join(dir, StateFile))
	if errors.Is(err, os.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, err
	}
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil {
		return State{}, fmt.Errorf("reading the identity state: %w", err)
	}
	if f.Version != 1 {
		return State{}, fmt.Errorf("reading the identity state: version %d, want 1", f.Version)
	}
	cert, err := parseCertPEM([]byte(f.Intermediate))
	if err != nil {
		return State{}, fmt.Errorf("reading the identity state's intermediate: %w", err)
	}
	key, err := openKey(k, f.IntKey, "identity intermediate key")
	if err != nil {
		return State{}, err
	}
	st := State{Intermediate: &CA{Cert: cert, Key: key}}
	for _, j := range f.JWTKeys {
		key, err := openKey(k, j.Key, "identity JWT key "+j.ID)
		if err != nil {
			return State{}, err
		}
		st.JWTKeys = append(st.JWTKeys, JWTKey{ID: j.ID, Key: key, NotBefore: j.NotBefore, NotAfter: j.NotAfter})
	}
	return st, nil
}

// WriteRoot writes root's certificate (0644) and, sealed, its key (0600)
// to dir, refusing to overwrite a root.
func WriteRoot(dir string, k *seal.Key, root *CA) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %q: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, RootCertFile)); err == nil {
		return fmt.Errorf("writing the root: %s exists (a root is made once; move it away to make another)", filepath.Join(dir, RootCertFile))
	}
	ec, ok := root.Key.(*ecdsa.PrivateKey)
	if !ok {
		return errors.New("writing the root: the key is not ECDSA")
	}
	s, err := sealKey(k, ec, "identity root key")
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	if err := writeFile(filepath.Join(dir, RootKeyFile), b); err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Cert.Raw})
	if err := os.WriteFile(filepath.Join(dir, RootCertFile), certPEM, 0o644); err != nil {
		return fmt.Errorf("writing the root certificate: %w", err)
	}
	return nil
}

// ReadRoot reads dir's root certificate and, when present, its key (nil
// when the root is kept offline).
func ReadRoot(dir string, k *seal.Key) (*x509.Certificate, *CA, error) {
	b, err := os.ReadFile(filepath.Join(dir, RootCertFile))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the root certificate: %w", err)
	}
	cert, err := parseCertPEM(b)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the root certificate: %w", err)
	}
	kb, err := readPrivate(filepath.Join(dir, RootKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return cert, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var s sealedKey
	if err := json.Unmarshal(kb, &s); err != nil {
		return nil, nil, fmt.Errorf("reading the root key: %w", err)
	}
	key, err := openKey(k, s, "identity root key")
	if err != nil {
		return nil, nil, err
	}
	return cert, &CA{Cert: cert, Key: key}, nil
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// readPrivate reads a file that must not be readable by group or others.
func readPrivate(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %v: must not be readable by group or others (chmod 600)", path, fi.Mode().Perm())
	}
	return os.ReadFile(path)
}

// writeFile writes b to path 0600 through a temporary file and a rename.
func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("writing %q: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fmt.Errorf("writing %q: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %q: %w", path, err)
	}
	return nil
}
