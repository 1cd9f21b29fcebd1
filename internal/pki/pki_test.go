package pki

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

func TestIssueServingCertificate(t *testing.T) {
	ca, err := NewCA("test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ca.Issue(Request{
		CommonName: "hook.ns.svc",
		DNSNames:   []string{"hook.ns.svc"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1)},
		Server:     true,
		ValidFor:   24 * time.Hour, // longer than the CA: capped
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM); err != nil {
		t.Fatalf("issued pair does not load: %v", err)
	}
	for _, host := range []string{"hook.ns.svc", "127.0.0.1"} {
		if err := Verify(ca.CertPEM, p.CertPEM, host); err != nil {
			t.Errorf("Verify(%s): %v", host, err)
		}
	}
	if err := Verify(ca.CertPEM, p.CertPEM, "other.ns.svc"); err == nil {
		t.Error("Verify accepted a host not in the certificate")
	}
	other, err := NewCA("other", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(other.CertPEM, p.CertPEM, "hook.ns.svc"); err == nil {
		t.Error("Verify accepted a certificate of another CA")
	}
	leaf, _ := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if got := leaf.Leaf.NotAfter; got.After(ca.Cert.NotAfter) {
		t.Errorf("leaf outlives its CA: %s > %s", got, ca.Cert.NotAfter)
	}
}

func TestClientCertificateIsNotAServer(t *testing.T) {
	ca, err := NewCA("test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ca.Issue(Request{CommonName: "admin", Organization: []string{"system:masters"}, DNSNames: []string{"admin"}, Client: true, ValidFor: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(ca.CertPEM, p.CertPEM, "admin"); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("client certificate verified for serving: %v", err)
	}
	if _, err := ca.Issue(Request{CommonName: "x", ValidFor: time.Hour}); err == nil {
		t.Error("Issue accepted a certificate with no use")
	}
}

func TestVerifyBadInput(t *testing.T) {
	ca, _ := NewCA("test-ca", time.Hour)
	if err := Verify([]byte("nope"), ca.CertPEM, "x"); err == nil || !strings.Contains(err.Error(), "CA bundle") {
		t.Errorf("bad bundle: %v", err)
	}
	if err := Verify(ca.CertPEM, []byte("nope"), "x"); err == nil || !strings.Contains(err.Error(), "serving certificate") {
		t.Errorf("bad certificate: %v", err)
	}
}

func TestKeyPair(t *testing.T) {
	priv, pub, err := KeyPair()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(priv), "BEGIN PRIVATE KEY") || !strings.Contains(string(pub), "BEGIN PUBLIC KEY") {
		t.Errorf("unexpected PEM types:\n%s\n%s", priv, pub)
	}
}
