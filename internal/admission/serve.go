package admission

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// ServeConfig is where and how Serve listens.
type ServeConfig struct {
	// Listen is host:port.
	Listen string
	// TLSCert and TLSKey are PEM files; they are read again when they
	// change (certificate rotation), checked at most every 10 s.
	TLSCert, TLSKey string
	// Ready, when set, is called with the bound address.
	Ready func(net.Addr)
	// ShutdownTimeout bounds a graceful stop (default 10 s).
	ShutdownTimeout time.Duration
}

// Serve runs the webhook over HTTPS and its background tasks (Run) until
// ctx ends.
func (w *Webhook) Serve(ctx context.Context, sc ServeConfig) error {
	if sc.TLSCert == "" || sc.TLSKey == "" {
		return errors.New("the API server calls webhooks over HTTPS: --tls-cert and --tls-key are required")
	}
	certs := &certReloader{certFile: sc.TLSCert, keyFile: sc.TLSKey}
	if _, err := certs.get(nil); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", sc.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", sc.Listen, err)
	}
	srv := &http.Server{
		Handler:           w.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get},
	}
	w.log.Info("bulwark admission listening", "addr", ln.Addr().String(), "server", w.cfg.Server.URL, "failurePolicy", w.cfg.FailurePolicy, "verifyBudget", w.cfg.VerifyBudget)
	if sc.Ready != nil {
		sc.Ready(ln.Addr())
	}
	timeout := sc.ShutdownTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	g.Go(func() error { return w.Run(gctx) })
	err = g.Wait()
	w.log.Info("bulwark admission stopped", "err", err)
	return err
}

// certReloader serves the key pair in two files, reading them again when
// their modification time changes.
type certReloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	mtime   time.Time
	checked time.Time
}

func (c *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert != nil && time.Since(c.checked) < 10*time.Second {
		return c.cert, nil
	}
	c.checked = time.Now()
	st, err := os.Stat(c.certFile)
	if err != nil {
		if c.cert != nil {
			return c.cert, nil
		}
		return nil, fmt.Errorf("reading TLS certificate: %w", err)
	}
	if c.cert != nil && st.ModTime().Equal(c.mtime) {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		if c.cert != nil { // keep serving the old pair mid-rotation
			return c.cert, nil
		}
		return nil, fmt.Errorf("loading TLS key pair %s, %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert, c.mtime = &cert, st.ModTime()
	return c.cert, nil
}
