package fuzz

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// TLS is what an https target needs from the client: the CA that signed
// its serving certificate (PEM; nil means the system roots) and, for a
// target that authenticates clients by certificate, a certificate and key
// (PEM).
type TLS struct {
	CA       []byte
	Cert     []byte
	Key      []byte
	CAName   string // for errors: where CA came from
	CertName string
}

// NewClient returns the client a campaign sends with: no redirects
// followed (a 3xx is an answer to check), and t's roots and client
// certificate. A client certificate authenticates every request, the
// replays "without credentials" too: an auth-bypass check then proves
// nothing, so prefer a bearer token (--auth) where the target takes one.
func NewClient(t TLS) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if len(t.CA) > 0 {
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(t.CA) {
			return nil, fmt.Errorf("reading CA certificates %s: no PEM certificate", t.CAName)
		}
		tr.TLSClientConfig.RootCAs = roots
	}
	if len(t.Cert) > 0 || len(t.Key) > 0 {
		pair, err := tls.X509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("reading client certificate %s: %w", t.CertName, err)
		}
		tr.TLSClientConfig.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// DocumentClient returns a client for Load that sends the credentials in
// auth with requests to target's scheme and host only (an API that serves
// its document to authenticated callers, as kube-apiserver does), never to
// another host the document's URL names.
func DocumentClient(c *http.Client, target string, auth []Pair) *http.Client {
	t, err := url.Parse(target)
	if err != nil || len(auth) == 0 {
		return c
	}
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	out := *c
	out.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if strings.EqualFold(r.URL.Scheme, t.Scheme) && strings.EqualFold(r.URL.Host, t.Host) {
			r = r.Clone(r.Context())
			for _, a := range auth {
				r.Header.Set(a.Name, a.Value)
			}
		}
		return next.RoundTrip(r)
	})
	return &out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
