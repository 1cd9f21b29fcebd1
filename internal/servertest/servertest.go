package servertest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Image is an image the server holds when it starts, as its scan would
// have stored it: the digest under one tag, certified when Certified is
// set (as `bulwark certify` reports).
type Image struct {
	Digest    name.Digest
	Tag       string
	Certified bool
}

// Server is a running `bulwark server`.
type Server struct {
	// URL is "http://127.0.0.1:PORT".
	URL string
	// Admin and Viewer are tokens of those roles.
	Admin, Viewer string

	once sync.Once
	stop func()
	// restart runs the server again on the same data and address
	// (restart.go).
	restart func(t *testing.T)
}

// Start seeds a fresh data directory with images and the two tokens (as
// `bulwark server token create` does) and runs server.Run on it with cfg,
// whose DataDir, Listen, Ready and Logger (discarding) it sets, and whose
// Workers and PollInterval default to 1 and 50 ms. The server stops when
// the test ends.
func Start(t *testing.T, cfg server.Config, images ...Image) *Server {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	st, err := server.OpenStore(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range images {
		d, repo := img.Digest.DigestStr(), img.Digest.Context().Name()
		if err := st.PutImage(ctx, store.Image{Digest: d, Repository: repo}); err != nil {
			t.Fatal(err)
		}
		if err := st.SetTag(ctx, repo, img.Tag, d); err != nil {
			t.Fatal(err)
		}
		if img.Certified {
			if err := st.SetCertification(ctx, d, store.Certified, "servertest: signed and attested"); err != nil {
				t.Fatal(err)
			}
		}
	}
	auditor := api.NewAuditor(st, audit.AnchorPath(server.DBPath(dir)))
	admin, err := api.CreateToken(ctx, auditor, "test:bootstrap", "root", store.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := api.CreateToken(ctx, auditor, "test:bootstrap", "admission", store.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	ready := make(chan net.Addr, 1)
	cfg.DataDir, cfg.Listen = dir, "127.0.0.1:0"
	cfg.Ready = func(a net.Addr) { ready <- a }
	cfg.Logger = slog.New(slog.DiscardHandler)
	if cfg.AllowPrivate == nil {
		cfg.AllowPrivate = []string{"127.0.0.1"} // the test registries
	}
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	s := &Server{Admin: admin.Token, Viewer: viewer.Token}
	s.run(t, cfg, ready)
	s.restart = func(t *testing.T) {
		cfg.Listen = strings.TrimPrefix(s.URL, "http://")
		s.once = sync.Once{}
		s.run(t, cfg, ready)
	}
	t.Cleanup(s.Stop)
	return s
}

// run starts server.Run with cfg and waits until it listens.
func (s *Server) run(t *testing.T, cfg server.Config, ready chan net.Addr) {
	t.Helper()
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(rctx, cfg) }()
	select {
	case a := <-ready:
		s.URL = "http://" + a.String()
	case err := <-done:
		cancel()
		t.Fatalf("server.Run: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("server not listening after 20 s")
	}
	s.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server.Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("server did not stop within 10 s")
		}
	}
}

// Stop stops the server and checks that Run returns nil promptly; later
// calls do nothing.
func (s *Server) Stop() { s.once.Do(s.stop) }

// SetCertification sets d's status through the API as the admin (as an
// admin, or the re-evaluation after an advisory import, does), failing
// the test unless the server answers 200.
func (s *Server) SetCertification(t *testing.T, d name.Digest, status, reason string) {
	t.Helper()
	code, b := s.Post(t, "/api/v1/images/"+d.DigestStr()+"/certification", api.CertificationRequest{Status: status, Reason: reason})
	if code != http.StatusOK {
		t.Fatalf("setting %s to %s: %d: %s", d.DigestStr(), status, code, b)
	}
}

// Post sends body as JSON to path with the admin token and returns the
// status and the answer's body.
func (s *Server) Post(t *testing.T, path string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}
