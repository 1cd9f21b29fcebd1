package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/trust"
)

// IdentityConfig is what the identity routes are made of (UseIdentity).
type IdentityConfig struct {
	Authority *identity.Authority
	Template  *identity.Template
	// Facts is what the server knows of a workload (trust.Facts).
	Facts func(ctx context.Context, w identity.Workload) (identity.Facts, error)
	// Grace is how long after a node's last heartbeat its workloads are
	// still renewed; zero is identity.DefaultNodeGrace.
	Grace time.Duration
	Feed  IdentityFeed
	// Decisions remembers the decisions (trust.Registry).
	Decisions IdentityDecisions
	// Federated lists the bundles of federated trust domains (nil: none).
	Federated func() []*spiffebundle.Bundle
	// TEE is the attestation condition of workloads whose policy asks for
	// a TEE (trust.TEEPolicy.Facts); nil asks none.
	TEE func(id spiffeid.ID, w identity.Workload) *identity.TEEFacts
	// ServiceAccounts resolves pods' service accounts from the cluster
	// (kube.ServiceAccounts); nil keeps what the agent reported.
	ServiceAccounts identity.ServiceAccounts
}

// IdentityFeed pushes certification changes to agents (trust.Feed).
type IdentityFeed interface {
	Wait(ctx context.Context, after int64, wait time.Duration) ([]string, int64, error)
}

// IdentityDecisions keeps the last decision of each container.
type IdentityDecisions interface {
	Note(identity.Record)
	List() []trust.Decision
}

type identityRoutes struct {
	cfg    IdentityConfig
	issuer *identity.Issuer
	group  *audit.Group
}

// UseIdentity turns the identity routes on: X.509- and JWT-SVIDs for
// agents, the change feed, the trust bundle and the decisions. Every
// decision is audited (group-committed) before it is answered.
func (h *Handler) UseIdentity(cfg IdentityConfig) {
	ir := &identityRoutes{cfg: cfg, group: &audit.Group{Commit: h.auditor.commitEntries}}
	ir.issuer = &identity.Issuer{Authority: cfg.Authority, Template: cfg.Template, Facts: cfg.Facts, Grace: cfg.Grace, TEE: cfg.TEE, ServiceAccounts: cfg.ServiceAccounts,
		Record: func(ctx context.Context, rec identity.Record) error {
			if err := ir.group.Append(ctx, decisionEntry(principal(ctx), rec)); err != nil {
				return err
			}
			if cfg.Decisions != nil {
				cfg.Decisions.Note(rec)
			}
			return nil
		}}
	h.identity = ir
}

// decisionEntry is the audit entry of an identity decision: the workload
// (node, container, digest, pod), the SPIFFE ID, and the serial and expiry
// or the reason.
func decisionEntry(p Principal, rec identity.Record) audit.Entry {
	action := "identity.issue"
	if rec.Refusal != nil {
		action = "identity.refuse"
	}
	rec.Workload.Labels = nil // bounded but large; the ID records what a label named
	after, _ := json.Marshal(rec)
	return audit.Entry{Actor: p.Actor(), Action: action, Object: "workload:" + rec.Workload.Node + "/" + rec.Workload.Container, After: after}
}

func (h *Handler) identityOn() (*identityRoutes, error) {
	if h.identity == nil {
		return nil, errorf(http.StatusNotFound, nil, "workload identity is not configured on this server (start it with --trust-domain)")
	}
	return h.identity, nil
}

// Bounds of the identity request bodies.
const maxIdentityBody = 64 << 10

func workloadOf(node string, w agentproto.Workload) identity.Workload {
	return identity.Workload{Node: node, Container: w.Container, Image: w.Image, Namespace: w.Namespace,
		ServiceAccount: w.ServiceAccount, Pod: w.Pod, App: w.App, Labels: w.Labels}
}

// identityRequest reads and checks an agent's identity request.
func (h *Handler) identityRequest(r *http.Request, req interface{ Validate() error }) (*identityRoutes, error) {
	ir, err := h.identityOn()
	if err != nil {
		return nil, err
	}
	if err := decodeBounded(r, req, maxIdentityBody); err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, errorf(http.StatusBadRequest, err, "%v", err)
	}
	return ir, nil
}

// writeRefusal answers a decision not to issue: 403 with its reason.
func writeRefusal(w http.ResponseWriter, ref *identity.Refusal) {
	writeJSON(w, http.StatusForbidden, agentproto.Refusal{Error: ref.Error(), Reason: ref.Reason, Detail: ref.Detail})
}

// issueX509 serves POST /api/v1/identity/x509: an agent asks an
// X.509-SVID for a workload over a certificate request made on its node.
func (h *Handler) issueX509(w http.ResponseWriter, r *http.Request) error {
	var req agentproto.X509Request
	ir, err := h.identityRequest(r, &req)
	if err != nil {
		return err
	}
	if err := h.nodeBound(r.Context(), req.Node); err != nil {
		return err
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return errorf(http.StatusBadRequest, err, "reading the certificate request: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return errorf(http.StatusBadRequest, err, "the certificate request's signature does not verify: %v", err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return errorf(http.StatusBadRequest, nil, "the certificate request's key must be ECDSA P-256")
	}
	s, err := ir.issuer.IssueX509(r.Context(), workloadOf(req.Node, req.Workload), pub)
	var ref *identity.Refusal
	if errors.As(err, &ref) {
		writeRefusal(w, ref)
		return nil
	}
	if err != nil {
		return err
	}
	out := agentproto.X509Response{SpiffeID: s.ID.String(), ExpiresAt: s.Expiry().UTC()}
	for _, c := range s.Chain {
		out.Chain = append(out.Chain, c.Raw)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// issueJWT serves POST /api/v1/identity/jwt.
func (h *Handler) issueJWT(w http.ResponseWriter, r *http.Request) error {
	var req agentproto.JWTRequest
	ir, err := h.identityRequest(r, &req)
	if err != nil {
		return err
	}
	if err := h.nodeBound(r.Context(), req.Node); err != nil {
		return err
	}
	tok, exp, err := ir.issuer.IssueJWT(r.Context(), workloadOf(req.Node, req.Workload), req.Audiences)
	var ref *identity.Refusal
	if errors.As(err, &ref) {
		writeRefusal(w, ref)
		return nil
	}
	if err != nil {
		return err
	}
	id, _ := ir.issuer.IDOf(r.Context(), workloadOf(req.Node, req.Workload))
	writeJSON(w, http.StatusOK, agentproto.JWTResponse{SpiffeID: id.String(), Token: tok, ExpiresAt: exp.UTC()})
	return nil
}

// identityChanges serves GET /api/v1/identity/changes?after=N&wait=S: a
// long poll (up to S seconds, at most agentproto.MaxChangesWait) for the
// digests whose certification changed after audit sequence N; without
// after, the current sequence number at once. It is
// exempt from the request timeout and the per-token in-flight bound (an
// agent holds one all the time); the feed bounds the polls held at once.
func (h *Handler) identityChanges(w http.ResponseWriter, r *http.Request) error {
	ir, err := h.identityOn()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	after := int64(-1) // none: the current sequence number at once
	if s := q.Get("after"); s != "" {
		if after, err = strconv.ParseInt(s, 10, 64); err != nil || after < 0 {
			return errorf(http.StatusBadRequest, err, "after %q: want an audit sequence number", s)
		}
	}
	var wait time.Duration
	if s := q.Get("wait"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || time.Duration(n)*time.Second > agentproto.MaxChangesWait {
			return errorf(http.StatusBadRequest, err, "wait %q: want 0 to %d seconds", s, int(agentproto.MaxChangesWait/time.Second))
		}
		wait = time.Duration(n) * time.Second
	}
	ds, seq, err := ir.cfg.Feed.Wait(r.Context(), after, wait)
	if errors.Is(err, trust.ErrBusy) {
		w.Header().Set("Retry-After", "5")
		return errorf(http.StatusServiceUnavailable, err, "%v; retry after 5 s", err)
	}
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []string{}
	}
	writeJSON(w, http.StatusOK, agentproto.Changes{Seq: seq, Digests: ds})
	return nil
}

// identityBundle serves GET /api/v1/identity/bundle: the trust domain's
// bundle as the SPIFFE Trust Domain and Bundle spec has it (a JWKS with
// x509-svid and jwt-svid keys, spiffe_sequence and spiffe_refresh_hint),
// which is what an https_web bundle endpoint serves; ?format=pem gives the
// X.509 roots as PEM for Envoy or Istio. Public: it holds no secret.
func (h *Handler) identityBundle(w http.ResponseWriter, r *http.Request) error {
	ir, err := h.identityOn()
	if err != nil {
		return err
	}
	b := ir.cfg.Authority.Bundle()
	switch r.URL.Query().Get("format") {
	case "", "jwks":
		doc, err := b.Marshal()
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	case "pem":
		w.Header().Set("Content-Type", "application/x-pem-file")
		for _, c := range b.X509Authorities() {
			pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		}
	default:
		return errorf(http.StatusBadRequest, nil, "format %q: want jwks or pem", r.URL.Query().Get("format"))
	}
	return nil
}

// federatedBundles serves GET /api/v1/identity/bundles: the bundles of the
// trust domains this server federates with, by trust domain ID, each as
// its bundle endpoint served it (SPIFFE JWKS). Agents hand them to
// workloads; public, as every bundle is.
func (h *Handler) federatedBundles(w http.ResponseWriter, r *http.Request) error {
	ir, err := h.identityOn()
	if err != nil {
		return err
	}
	out := map[string]json.RawMessage{}
	if ir.cfg.Federated != nil {
		for _, b := range ir.cfg.Federated() {
			doc, err := b.Marshal()
			if err != nil {
				return err
			}
			out[b.TrustDomain().IDString()] = doc
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"bundles": out})
	return nil
}

// identityDecisions serves GET /api/v1/identity/decisions[?container=ID]:
// the last decision of each container (issued or refused, and why).
func (h *Handler) identityDecisions(w http.ResponseWriter, r *http.Request) error {
	ir, err := h.identityOn()
	if err != nil {
		return err
	}
	out := []trust.Decision{}
	if ir.cfg.Decisions != nil {
		c := r.URL.Query().Get("container")
		for _, d := range ir.cfg.Decisions.List() {
			if c == "" || d.Container == c {
				out = append(out, d)
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"decisions": out})
	return nil
}
