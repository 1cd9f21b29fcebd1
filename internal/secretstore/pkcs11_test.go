//go:build cgo

package secretstore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/bulwark-sec/bulwark/internal/secretstore/softhsmtest"
)

const softhsmModule = softhsmtest.Module

// TestPKCS11KEKWithSoftHSM keeps the key-encryption key in a real SoftHSM
// token: secrets written through it open after the token is opened again
// (the key is on the token, not in the server), a wrong PIN is refused
// without echoing it, rows of one key do not open under another, and the
// key's bytes cannot be read off the token.
func TestPKCS11KEKWithSoftHSM(t *testing.T) {
	label, pin := softhsmtest.Token(t)
	ctx := context.Background()
	cfg := PKCS11Config{Module: softhsmModule, TokenLabel: label, PIN: pin, KeyLabel: "bulwark-kek"}
	if _, err := OpenPKCS11KEK(cfg); err == nil || !strings.Contains(err.Error(), "no key labelled") {
		t.Fatalf("opening a missing key without Create: %v", err)
	}
	cfg.Create = true
	kek, err := OpenPKCS11KEK(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if kek.Name() != "pkcs11:bulwark-kek" {
		t.Fatalf("Name = %q", kek.Name())
	}
	path := filepath.Join(t.TempDir(), "bulwark.db")
	s, st := newService(t, path, nil, nil)
	s.kek = kek
	if _, err := s.Put(ctx, "test", "db/password", Spec{Kind: KindKV, Policy: payments}, kv("password", "in-the-hsm")); err != nil {
		t.Fatal(err)
	}
	row, err := st.VaultVersion(ctx, "db/password", 0)
	if err != nil || row.KEK != "pkcs11:bulwark-kek" {
		t.Fatalf("stored row: %+v %v", row, err)
	}
	// Tampering with the wrapped key or moving it to another name fails.
	bad := append([]byte(nil), row.WrappedKey...)
	bad[len(bad)-1] ^= 1
	if _, err := kek.Unwrap(bad, versionContext("db/password", 1)); err == nil {
		t.Fatal("a tampered wrapped key unwrapped")
	}
	if _, err := kek.Unwrap(row.WrappedKey, versionContext("db/other", 1)); err == nil {
		t.Fatal("a wrapped key unwrapped under another name")
	}
	// A file KEK cannot open what the token wrapped.
	fs := &Service{st: st, kek: NewFileKEK(testKey)}
	if _, err := fs.open(row); err == nil || !strings.Contains(err.Error(), `wrapped by key "pkcs11:bulwark-kek"`) {
		t.Fatalf("file KEK opening a PKCS#11 row: %v", err)
	}
	if err := kek.Close(); err != nil {
		t.Fatal(err)
	}

	// Open the token again (a server restart): the key is found, the value opens.
	cfg.Create = false
	kek2, err := OpenPKCS11KEK(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.kek = kek2
	s.secrets["db/password"].value = nil
	if got, _, err := s.Get(ctx, "test", "db/password", 0); err != nil || got.Data["password"] != "in-the-hsm" {
		t.Fatalf("after reopening the token: %v %v", got, err)
	}
	kek2.Close()

	wrong := cfg
	wrong.PIN = "not-the-pin-9999"
	if _, err := OpenPKCS11KEK(wrong); err == nil || strings.Contains(err.Error(), wrong.PIN) || strings.Contains(err.Error(), pin) {
		t.Fatalf("wrong PIN: %v", err)
	}
	if v := keyValue(t, label, pin, "bulwark-kek"); v != pkcs11.CKR_ATTRIBUTE_SENSITIVE {
		t.Fatalf("reading the key's CKA_VALUE off the token: %v, want CKR_ATTRIBUTE_SENSITIVE", v)
	}
}

// keyValue tries to read the key's bytes through plain PKCS#11, as an
// attacker holding the PIN would, and returns the token's answer.
func keyValue(t *testing.T, token, pin, key string) pkcs11.Error {
	t.Helper()
	p := pkcs11.New(softhsmModule)
	if err := p.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer p.Destroy()
	defer p.Finalize()
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, slot := range slots {
		ti, err := p.GetTokenInfo(slot)
		if err != nil || ti.Label != token {
			continue
		}
		sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			t.Fatal(err)
		}
		defer p.CloseSession(sh)
		if err := p.Login(sh, pkcs11.CKU_USER, pin); err != nil {
			t.Fatal(err)
		}
		if err := p.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, key)}); err != nil {
			t.Fatal(err)
		}
		objs, _, err := p.FindObjects(sh, 1)
		p.FindObjectsFinal(sh)
		if err != nil || len(objs) != 1 {
			t.Fatalf("finding the key: %v %v", objs, err)
		}
		_, err = p.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		if e, ok := err.(pkcs11.Error); ok {
			return e
		}
		t.Fatalf("CKA_VALUE read: %v", err)
	}
	t.Fatalf("no token %q", token)
	return 0
}
