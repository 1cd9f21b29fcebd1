package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Defaults of what the authority issues.
const (
	DefaultX509TTL = time.Hour
	DefaultJWTTTL  = 5 * time.Minute
	// MaxTTL bounds any SVID: short-lived SVIDs are the revocation.
	MaxTTL = 24 * time.Hour
	// JWTKeyTTL is how long a JWT signing key signs; it stays in the
	// bundle one JWT lifetime more, and the next key is in the bundle for
	// half a JWTKeyTTL before it signs (the overlap).
	JWTKeyTTL = 24 * time.Hour
	// BundleRefreshHint tells bundle endpoint consumers how often to poll.
	BundleRefreshHint = 5 * time.Minute
)

// Config configures an Authority.
type Config struct {
	TrustDomain spiffeid.TrustDomain
	// Roots are the trusted roots (the bundle's X.509 authorities): the
	// current one and, while a root rotates, the next or previous one.
	Roots []*x509.Certificate
	// Root signs intermediates when the server may hold it; nil keeps the
	// root offline (Intermediate must then be given and is replaced by an
	// operator before it expires).
	Root *CA
	// Intermediate signs SVIDs; nil has one made by Root.
	Intermediate    *CA
	IntermediateTTL time.Duration // zero: DefaultIntermediateTTL
	X509TTL         time.Duration // zero: DefaultX509TTL
	JWTTTL          time.Duration // zero: DefaultJWTTTL
	// JWTKeys are kept JWT keys (from State), current last; none makes one.
	JWTKeys []JWTKey
	Now     func() time.Time // nil: time.Now
}

// JWTKey is a JWT-SVID signing key with its key id and life.
type JWTKey struct {
	ID        string
	Key       *ecdsa.PrivateKey
	NotBefore time.Time // signs from (published earlier)
	NotAfter  time.Time // signs until (published one JWT lifetime longer)
}

func (k JWTKey) String() string {
	return fmt.Sprintf("JWTKey(%s, until %s)", k.ID, k.NotAfter.UTC().Format(time.RFC3339))
}

// Authority issues SVIDs for one trust domain. It is safe for concurrent
// use; Rotate is called periodically (the server's CA task).
type Authority struct {
	td      spiffeid.TrustDomain
	x509TTL time.Duration
	jwtTTL  time.Duration
	intTTL  time.Duration
	now     func() time.Time

	mu           sync.RWMutex
	roots        []*x509.Certificate
	root         *CA
	intermediate *CA
	jwtKeys      []JWTKey // ascending NotBefore; the signer is the newest with NotBefore <= now
	seq          uint64   // bundle sequence number, bumped on every change
}

// New validates cfg and returns its authority.
func New(cfg Config) (*Authority, error) {
	if cfg.TrustDomain.IsZero() {
		return nil, errors.New("identity: no trust domain")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Authority{td: cfg.TrustDomain, x509TTL: cfg.X509TTL, jwtTTL: cfg.JWTTTL, intTTL: cfg.IntermediateTTL, now: cfg.Now,
		root: cfg.Root, intermediate: cfg.Intermediate, jwtKeys: append([]JWTKey(nil), cfg.JWTKeys...), seq: 1}
	if a.x509TTL <= 0 {
		a.x509TTL = DefaultX509TTL
	}
	if a.jwtTTL <= 0 {
		a.jwtTTL = DefaultJWTTTL
	}
	if a.intTTL <= 0 {
		a.intTTL = DefaultIntermediateTTL
	}
	if a.x509TTL > MaxTTL || a.jwtTTL > MaxTTL {
		return nil, fmt.Errorf("identity: SVID lifetimes are at most %s", MaxTTL)
	}
	now := a.now()
	a.roots = append(a.roots, cfg.Roots...)
	if cfg.Root != nil {
		if err := cfg.Root.Check(a.td, now); err != nil {
			return nil, fmt.Errorf("identity: the root: %w", err)
		}
		if !containsCert(a.roots, cfg.Root.Cert) {
			a.roots = append(a.roots, cfg.Root.Cert)
		}
	}
	if len(a.roots) == 0 {
		return nil, errors.New("identity: no root")
	}
	if err := a.Rotate(); err != nil {
		return nil, err
	}
	return a, nil
}

// TrustDomain is the authority's trust domain.
func (a *Authority) TrustDomain() spiffeid.TrustDomain { return a.td }

// Rotate replaces the intermediate when past half its life (Root held)
// and rolls the JWT keys: the next key is published half a key lifetime
// before it signs, and a retired key stays published until the last JWT
// it signed has expired. It fails when no intermediate can sign.
func (a *Authority) Rotate() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	changed := false
	it := a.intermediate
	if a.root != nil && (it == nil || now.After(halfLife(it.Cert.NotBefore, it.Cert.NotAfter))) {
		next, err := a.root.NewIntermediate(a.intTTL, now)
		if err != nil {
			return fmt.Errorf("identity: rotating the intermediate: %w", err)
		}
		a.intermediate, changed = next, true
	}
	if err := a.intermediate.Check(a.td, now); err != nil {
		return fmt.Errorf("identity: the intermediate: %w", err)
	}
	if err := a.chains(a.intermediate.Cert); err != nil {
		return err
	}
	// JWT keys: drop what no live token can name, make the next one.
	kept := a.jwtKeys[:0]
	for _, k := range a.jwtKeys {
		if now.Before(k.NotAfter.Add(a.jwtTTL)) {
			kept = append(kept, k)
		} else {
			changed = true
		}
	}
	a.jwtKeys = kept
	last := time.Time{}
	if n := len(a.jwtKeys); n > 0 {
		last = a.jwtKeys[n-1].NotAfter
	}
	if len(a.jwtKeys) == 0 || now.After(last.Add(-JWTKeyTTL/2)) {
		start := now
		if len(a.jwtKeys) > 0 && last.After(now) {
			start = last // published now, signs when the current one stops
		}
		k, err := newJWTKey(start)
		if err != nil {
			return err
		}
		a.jwtKeys, changed = append(a.jwtKeys, k), true
	}
	if changed {
		a.seq++
	}
	return nil
}

// chains checks that c verifies to one of the roots.
func (a *Authority) chains(c *x509.Certificate) error {
	pool := x509.NewCertPool()
	for _, r := range a.roots {
		pool.AddCert(r)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: a.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("identity: the intermediate does not chain to the bundle's roots: %w", err)
	}
	return nil
}

func newJWTKey(start time.Time) (JWTKey, error) {
	key, err := NewKey()
	if err != nil {
		return JWTKey{}, fmt.Errorf("making a JWT key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return JWTKey{}, err
	}
	sum := sha256.Sum256(der)
	return JWTKey{ID: base64.RawURLEncoding.EncodeToString(sum[:16]), Key: key, NotBefore: start, NotAfter: start.Add(JWTKeyTTL)}, nil
}

func halfLife(from, to time.Time) time.Time { return from.Add(to.Sub(from) / 2) }

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range list {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// Bundle is the trust domain's bundle: the roots as X.509 authorities and
// every published JWT key, with a refresh hint and a sequence number that
// grows on each change.
func (a *Authority) Bundle() *spiffebundle.Bundle {
	a.mu.RLock()
	defer a.mu.RUnlock()
	b := spiffebundle.New(a.td)
	b.SetX509Authorities(a.roots)
	for _, k := range a.jwtKeys {
		_ = b.AddJWTAuthority(k.ID, k.Key.Public()) // ids are unique hashes
	}
	b.SetRefreshHint(BundleRefreshHint)
	b.SetSequenceNumber(a.seq)
	return b
}

// Intermediate is the signing intermediate (public part, for the chain).
func (a *Authority) Intermediate() *x509.Certificate {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.intermediate.Cert
}

// X509SVID is an issued X.509-SVID: leaf first, then the intermediate.
type X509SVID struct {
	ID    spiffeid.ID
	Chain []*x509.Certificate
}

// Expiry is when the SVID stops being valid.
func (s X509SVID) Expiry() time.Time { return s.Chain[0].NotAfter }

// SignX509 issues an X.509-SVID for id over pub (the workload's key, made
// where it is used: the authority never sees it). ttl zero is the
// default; the SVID never outlives the intermediate.
func (a *Authority) SignX509(id spiffeid.ID, pub crypto.PublicKey, ttl time.Duration) (X509SVID, error) {
	if !id.MemberOf(a.td) {
		return X509SVID{}, fmt.Errorf("signing an X.509-SVID for %q: not of trust domain %q", id, a.td.Name())
	}
	if _, ok := pub.(*ecdsa.PublicKey); !ok {
		return X509SVID{}, fmt.Errorf("signing an X.509-SVID for %q: the key is %T, want ECDSA", id, pub)
	}
	if ttl <= 0 {
		ttl = a.x509TTL
	}
	ttl = min(ttl, MaxTTL)
	a.mu.RLock()
	it := a.intermediate
	a.mu.RUnlock()
	now := a.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		NotBefore:             now.Add(-backdate),
		NotAfter:              minTime(now.Add(ttl), it.Cert.NotAfter),
		URIs:                  []*url.URL{id.URL()},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	tmpl.Subject.Organization = []string{"Bulwark"}
	tmpl.Subject.SerialNumber = tmpl.SerialNumber.String()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, it.Cert, pub, it.Key)
	if err != nil {
		return X509SVID{}, fmt.Errorf("signing an X.509-SVID for %q: %w", id, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return X509SVID{}, fmt.Errorf("reading back the X.509-SVID for %q: %w", id, err)
	}
	return X509SVID{ID: id, Chain: []*x509.Certificate{leaf, it.Cert}}, nil
}

// RenewAt is when a holder renews a certificate or token valid from
// notBefore to notAfter: at half its life.
func RenewAt(notBefore, notAfter time.Time) time.Time { return halfLife(notBefore, notAfter) }
