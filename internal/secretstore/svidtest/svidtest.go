// Package svidtest is a test certificate authority issuing X.509-SVIDs
// (a spiffe:// URI SAN) and a server certificate for 127.0.0.1, for tests
// and benchmarks of the secret store's workload API. The server's real
// identity CA (internal/identity) replaces it outside tests.
package svidtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// CA is an in-memory certificate authority.
type CA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	Pool   *x509.CertPool // its bundle
	serial atomic.Int64
}

// New returns a new CA valid for an hour either side of now.
func New() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "svidtest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating the test CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ca := &CA{cert: cert, key: key, Pool: pool}
	ca.serial.Store(1)
	return ca, nil
}

// Issue returns a certificate for the SPIFFE IDs ids (an SVID), or for
// 127.0.0.1 when ids is empty (a server).
func (ca *CA) Issue(ids ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial.Add(1)), NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	for _, id := range ids {
		u, err := url.Parse(id)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("parsing SPIFFE ID %q: %w", id, err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	if len(ids) == 0 {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issuing a certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// Client is an HTTP client trusting the CA and presenting cert (nil:
// none).
func (ca *CA) Client(cert *tls.Certificate) *http.Client {
	conf := &tls.Config{RootCAs: ca.Pool}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: conf, MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
}

// WriteFiles writes the CA's bundle and a server certificate for
// 127.0.0.1 with its key (0600) as PEM files in dir, for a server that
// reads them from files.
func (ca *CA) WriteFiles(dir string) (bundle, cert, key string, err error) {
	bundle = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o600); err != nil {
		return "", "", "", err
	}
	cert, key, err = ca.WriteCert(dir, "server")
	return bundle, cert, key, err
}

// WriteCert issues a certificate for ids (127.0.0.1 when none) and
// writes it and its key (0600) as dir/NAME.pem and dir/NAME.key.
func (ca *CA) WriteCert(dir, name string, ids ...string) (cert, key string, err error) {
	c, err := ca.Issue(ids...)
	if err != nil {
		return "", "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return "", "", err
	}
	cert, key = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		return "", "", err
	}
	return cert, key, os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}
