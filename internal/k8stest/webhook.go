package k8stest

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/pki"
)

// WebhookCert makes a CA and a serving certificate for 127.0.0.1 and
// localhost issued by it, as the API server needs to call a webhook on
// this machine. caPEM is the webhook configuration's caBundle.
func WebhookCert(t testing.TB) (cert tls.Certificate, caPEM []byte) {
	t.Helper()
	ca, err := pki.NewCA("bulwark-webhook-test-ca", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ca.Issue(pki.Request{
		CommonName: "127.0.0.1",
		DNSNames:   []string{"localhost"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1)},
		Server:     true,
		ValidFor:   24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	cert, err = tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert, ca.CertPEM
}

// ServeWebhook serves h over HTTPS on 127.0.0.1 with a WebhookCert until
// t ends, and returns its base URL (https://127.0.0.1:PORT) and caBundle.
func ServeWebhook(t testing.TB, h http.Handler) (url string, caPEM []byte) {
	t.Helper()
	cert, caPEM := WebhookCert(t)
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, caPEM
}
