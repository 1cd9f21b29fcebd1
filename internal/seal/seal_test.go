package seal

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	k, err := Load("", filepath.Join(t.TempDir(), "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte(`{"username":"ci","password":"hunter2"}`)
	sealed, err := k.Seal(secret, "registry:ghcr")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := k.Open(sealed, "registry:ghcr")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := k.Open(sealed, "registry:other"); !errors.Is(err, ErrOpen) {
		t.Errorf("opened under another context: %v", err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := k.Open(tampered, "registry:ghcr"); !errors.Is(err, ErrOpen) {
		t.Errorf("opened a tampered value: %v", err)
	}
	other, _ := New(bytes.Repeat([]byte{7}, KeySize))
	if _, err := other.Open(sealed, "registry:ghcr"); !errors.Is(err, ErrOpen) {
		t.Errorf("opened with another key: %v", err)
	}
	again, _ := k.Seal(secret, "registry:ghcr")
	if bytes.Equal(again, sealed) {
		t.Error("two seals of the same value are equal (nonce reused)")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	def := filepath.Join(dir, "data", "secret.key")
	k1, err := Load("", def)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(def)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("default key file: %v, %v", fi, err)
	}
	k2, err := Load("", def)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := k1.Seal([]byte("x"), "c")
	if _, err := k2.Open(s, "c"); err != nil {
		t.Errorf("a reloaded key does not open what the first sealed: %v", err)
	}

	raw := bytes.Repeat([]byte{1}, KeySize)
	t.Setenv(EnvKey, base64.StdEncoding.EncodeToString(raw))
	fromEnv, err := Load("", def)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fromEnv.Open(s, "c"); !errors.Is(err, ErrOpen) {
		t.Error("the environment key was not used over the default file")
	}

	loose := filepath.Join(dir, "loose.key")
	os.WriteFile(loose, []byte(base64.StdEncoding.EncodeToString(raw)), 0o644)
	if _, err := Load(loose, def); err == nil {
		t.Error("a world-readable key file was accepted")
	}
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, []byte("c2hvcnQ="), 0o600)
	if _, err := Load(short, def); err == nil {
		t.Error("a short key was accepted")
	}
}
