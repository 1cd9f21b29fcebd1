package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Lifetimes of the authorities.
const (
	DefaultRootTTL         = 10 * 365 * 24 * time.Hour
	DefaultIntermediateTTL = 7 * 24 * time.Hour
	// backdate covers clocks a little behind the server's.
	backdate = 30 * time.Second
)

// CA is a certificate and the key it signs with. Its String never shows the
// key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

func (c *CA) String() string {
	if c == nil || c.Cert == nil {
		return "CA(none)"
	}
	return fmt.Sprintf("CA(%s, serial %x, until %s)", c.Cert.Subject.CommonName, c.Cert.SerialNumber, c.Cert.NotAfter.UTC().Format(time.RFC3339))
}

// NewKey makes an ECDSA P-256 key, the only kind the package signs with or
// issues for.
func NewKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// NewRoot makes a self-signed root for trust domain td. Its subject names
// the trust domain; its URI SAN is the trust domain's SPIFFE ID, as the
// X.509-SVID spec allows for signing certificates.
func NewRoot(td spiffeid.TrustDomain, ttl time.Duration, now time.Time) (*CA, error) {
	if td.IsZero() {
		return nil, errors.New("making a root: no trust domain")
	}
	if ttl <= 0 {
		ttl = DefaultRootTTL
	}
	key, err := NewKey()
	if err != nil {
		return nil, fmt.Errorf("making a root key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Bulwark"}, CommonName: "Bulwark root " + td.Name()},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(ttl),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	return sign(tmpl, key, nil)
}

// NewIntermediate makes an intermediate signed by root, valid for ttl but
// never past root. Only it is online in the server; it may issue nothing
// but leaves (path length zero).
func (root *CA) NewIntermediate(ttl time.Duration, now time.Time) (*CA, error) {
	if ttl <= 0 {
		ttl = DefaultIntermediateTTL
	}
	td, err := caTrustDomain(root.Cert)
	if err != nil {
		return nil, err
	}
	key, err := NewKey()
	if err != nil {
		return nil, fmt.Errorf("making an intermediate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Bulwark"}, CommonName: "Bulwark intermediate " + td.Name()},
		NotBefore:             now.Add(-backdate),
		NotAfter:              minTime(now.Add(ttl), root.Cert.NotAfter),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	return sign(tmpl, key, root)
}

// caTrustDomain reads the trust domain a signing certificate names.
func caTrustDomain(c *x509.Certificate) (spiffeid.TrustDomain, error) {
	if c == nil || len(c.URIs) != 1 {
		return spiffeid.TrustDomain{}, errors.New("the CA certificate names no trust domain (one spiffe:// URI SAN)")
	}
	id, err := spiffeid.FromURI(c.URIs[0])
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("reading the CA's trust domain: %w", err)
	}
	return id.TrustDomain(), nil
}

// sign signs tmpl with parent (nil: self-signed with key).
func sign(tmpl *x509.Certificate, key *ecdsa.PrivateKey, parent *CA) (*CA, error) {
	pc, pk := tmpl, crypto.Signer(key)
	if parent != nil {
		pc, pk = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, pc, key.Public(), pk)
	if err != nil {
		return nil, fmt.Errorf("signing %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("reading %q back: %w", tmpl.Subject.CommonName, err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Check says whether c can sign for trust domain td now: a CA certificate
// of td, valid at now, whose key matches.
func (c *CA) Check(td spiffeid.TrustDomain, now time.Time) error {
	if c == nil || c.Cert == nil || c.Key == nil {
		return errors.New("no CA")
	}
	if !c.Cert.IsCA {
		return fmt.Errorf("%s is not a CA certificate", c)
	}
	got, err := caTrustDomain(c.Cert)
	if err != nil {
		return err
	}
	if got != td {
		return fmt.Errorf("%s is of trust domain %q, not %q", c, got.Name(), td.Name())
	}
	if now.Before(c.Cert.NotBefore) || now.After(c.Cert.NotAfter) {
		return fmt.Errorf("%s is not valid now", c)
	}
	pub, ok := c.Key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(c.Cert.PublicKey) {
		return fmt.Errorf("%s: the key does not match the certificate", c)
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("reading random bytes: %v", err)) // crypto/rand never fails on Linux
	}
	return n.Add(n, big.NewInt(1))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
