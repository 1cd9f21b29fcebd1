package sign_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/sign"
)

func TestGenerateKeyRoundTrip(t *testing.T) {
	priv, pub, err := sign.GenerateKey([]byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(priv)
	if block == nil || block.Type != sign.EncryptedKeyPEMType {
		t.Fatalf("private key PEM %q", priv)
	}
	// The body is go-securesystemslib's JSON: scrypt KDF, secretbox cipher.
	var box struct {
		KDF struct {
			Name   string         `json:"name"`
			Params map[string]int `json:"params"`
		} `json:"kdf"`
		Cipher struct {
			Name string `json:"name"`
		} `json:"cipher"`
		Ciphertext []byte `json:"ciphertext"`
	}
	if err := json.Unmarshal(block.Bytes, &box); err != nil {
		t.Fatal(err)
	}
	if box.KDF.Name != "scrypt" || box.Cipher.Name != "nacl/secretbox" || box.KDF.Params["N"] != 65536 {
		t.Errorf("encrypted key body %s", block.Bytes)
	}
	if strings.Contains(string(priv), "correct horse") {
		t.Error("the passphrase is in the key file")
	}

	key, err := sign.LoadPrivateKey(priv, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	pk, err := sign.LoadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !key.PublicKey.Equal(pk) {
		t.Error("the public key does not match the private key")
	}

	// A signature by the loaded key verifies with the public key.
	sig, err := sign.NewKeySigner(key).Sign(context.Background(), []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sig) == 0 {
		t.Fatal("empty signature")
	}

	if _, err := sign.LoadPrivateKey(priv, []byte("wrong")); !errors.Is(err, sign.ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: got %v, want ErrWrongPassphrase", err)
	}
	if _, err := sign.LoadPrivateKey(priv, nil); !errors.Is(err, sign.ErrWrongPassphrase) {
		t.Errorf("no passphrase: got %v, want ErrWrongPassphrase", err)
	}
}

func TestEmptyPassphrase(t *testing.T) {
	priv, _, err := sign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign.LoadPrivateKey(priv, []byte{}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadPlainPrivateKeys(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p8, _ := x509.MarshalPKCS8PrivateKey(k)
	sec1, _ := x509.MarshalECPrivateKey(k)
	for typ, der := range map[string][]byte{"PRIVATE KEY": p8, "EC PRIVATE KEY": sec1} {
		got, err := sign.LoadPrivateKey(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), nil)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if !got.Equal(k) {
			t.Errorf("%s: a different key came back", typ)
		}
	}
}

func TestLoadKeyErrors(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(p384)
	pubDER, _ := x509.MarshalPKIXPublicKey(p384.Public())
	for name, tc := range map[string]struct {
		pem  []byte
		load func([]byte) error
		want string
	}{
		"not PEM":        {[]byte("hello"), loadPriv, "no PEM block"},
		"RSA type":       {pemOf("RSA PRIVATE KEY", []byte{1}), loadPriv, "unsupported PEM type"},
		"P-384 private":  {pemOf("PRIVATE KEY", der), loadPriv, "P-384"},
		"P-384 public":   {pemOf("PUBLIC KEY", pubDER), loadPub, "P-384"},
		"private as pub": {pemOf("PRIVATE KEY", der), loadPub, "unsupported PEM type"},
		// verify --key bulwark.key, certify --key bulwark.pub: say which file is wanted
		"sigstore private as pub": {pemOf(sign.EncryptedKeyPEMType, []byte("{")), loadPub, "a private key: give the public key (.pub)"},
		"public as private":       {pemOf("PUBLIC KEY", pubDER), loadPriv, "a public key: give the private key (.key)"},
		"garbage box":             {pemOf(sign.EncryptedKeyPEMType, []byte("{")), loadPriv, "decrypting private key"},
		"public not PEM":          {[]byte(""), loadPub, "no PEM block"},
		"truncated public":        {pemOf("PUBLIC KEY", pubDER[:10]), loadPub, "parsing public key"},
	} {
		err := tc.load(tc.pem)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.want)
		}
	}
}

func pemOf(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }

func loadPriv(b []byte) error { _, err := sign.LoadPrivateKey(b, []byte("x")); return err }
func loadPub(b []byte) error  { _, err := sign.LoadPublicKey(b); return err }
