package secretstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Paths of the workload API, served on its own mTLS listener: a workload
// authenticates with its X.509-SVID and nothing else.
const (
	// WorkloadPath + name returns a secret: a kv secret as JSON, a file
	// secret as its bytes.
	WorkloadPath = "/api/v1/workload/secrets/"
	// VaultKVPath + name is Vault's KV version 2 read path, so Vault
	// clients read secrets unchanged (mount "secret").
	VaultKVPath = "/v1/secret/data/"
)

// Handler serves the workload API over s.
type Handler struct {
	s        *Service
	log      *slog.Logger
	limiters *limiters
}

// NewHandler returns the workload API of s; log nil discards. Each
// identity may fetch DefaultRate times a second (burst DefaultBurst);
// past that it gets 429, unaudited, so a workload cannot flood the audit
// log or the server.
func NewHandler(s *Service, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{s: s, log: log, limiters: newLimiters(DefaultRate, DefaultBurst)}
}

// Throttled is how many requests were refused for their identity's rate.
func (h *Handler) Throttled() int64 { return h.limiters.throttled.Load() }

// KVResponse is the answer of WorkloadPath for a kv secret.
type KVResponse struct {
	Name    string            `json:"name"`
	Version int64             `json:"version"`
	Data    map[string]string `json:"data"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	vault := strings.HasPrefix(r.URL.Path, VaultKVPath)
	name, ok := strings.CutPrefix(r.URL.Path, WorkloadPath)
	if vault {
		name = strings.TrimPrefix(r.URL.Path, VaultKVPath)
	} else if !ok {
		h.fail(w, vault, http.StatusNotFound, "no such route")
		return
	}
	if r.Method != http.MethodGet {
		h.fail(w, vault, http.StatusMethodNotAllowed, "only GET")
		return
	}
	id, err := PeerID(r.TLS)
	if err != nil {
		h.fail(w, vault, http.StatusUnauthorized, err.Error())
		return
	}
	if !h.limiters.allow(id) {
		w.Header().Set("Retry-After", "1")
		h.fail(w, vault, http.StatusTooManyRequests, "too many requests for identity "+id)
		return
	}
	if err := ValidName(name); err != nil {
		h.fail(w, vault, http.StatusBadRequest, err.Error())
		return
	}
	rel, err := h.s.Release(r.Context(), id, name)
	var d *Denied
	switch {
	case errors.As(err, &d):
		h.fail(w, vault, http.StatusForbidden, d.Error())
		return
	case errors.Is(err, ErrUnknown):
		h.fail(w, vault, http.StatusNotFound, fmt.Sprintf("secret %q: %v", name, err))
		return
	case err != nil:
		h.log.Error("releasing a secret", "secret", name, "identity", id, "err", err)
		h.fail(w, vault, http.StatusInternalServerError, "internal error (logged at the server)")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case vault:
		data := rel.Value.Data
		if rel.Kind == KindFile {
			b, _ := json.Marshal(rel.Value.File) // base64
			data = map[string]string{"file": strings.Trim(string(b), `"`)}
		}
		writeJSON(w, http.StatusOK, vaultRead(data, rel.Version))
	case rel.Kind == KindFile:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Bulwark-Secret-Version", strconv.FormatInt(rel.Version, 10))
		w.Write(rel.Value.File)
	default:
		writeJSON(w, http.StatusOK, KVResponse{Name: name, Version: rel.Version, Data: rel.Value.Data})
	}
}

// vaultRead is Vault's KV v2 read response.
func vaultRead(data map[string]string, version int64) map[string]any {
	return map[string]any{
		"request_id": "", "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": map[string]any{"data": data, "metadata": map[string]any{
			"version": version, "created_time": time.Time{}.Format(time.RFC3339Nano), "deletion_time": "",
			"destroyed": false, "custom_metadata": nil}},
		"wrap_info": nil, "warnings": nil, "auth": nil,
	}
}

func (h *Handler) fail(w http.ResponseWriter, vault bool, code int, msg string) {
	if vault { // Vault's error shape
		writeJSON(w, code, map[string][]string{"errors": {msg}})
		return
	}
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// PeerID is the SPIFFE ID of a verified client certificate: the leaf's one
// spiffe:// URI SAN.
func PeerID(cs *tls.ConnectionState) (string, error) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", errors.New("no verified client certificate: present your X.509-SVID")
	}
	var id string
	for _, u := range cs.VerifiedChains[0][0].URIs {
		if u.Scheme == "spiffe" {
			if id != "" {
				return "", errors.New("the client certificate has more than one SPIFFE ID")
			}
			id = u.String()
		}
	}
	if id == "" || len(id) > 2048 {
		return "", errors.New("the client certificate has no SPIFFE ID (spiffe:// URI SAN)")
	}
	return id, nil
}

// TLSConfig is the listener's TLS: the server's certificate, and client
// certificates required and verified against bundle (the identity CA's).
func TLSConfig(cert tls.Certificate, bundle *x509.CertPool) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: bundle,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
}

// Server is the workload API's listener as a daemon.
type Server struct {
	Addr    string
	TLS     *tls.Config
	Handler http.Handler
}

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listening for workloads on %s: %w", s.Addr, err)
	}
	srv := &http.Server{Handler: s.Handler, TLSConfig: s.TLS, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving workloads: %w", err)
	}
	return nil
}
