package workloadapi

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/tokenfile"
)

// maxAnswer bounds what is read of a server answer.
const maxAnswer = 1 << 20

// ServerIssuer is the Issuer of a bulwark server's API: the agent asks it
// for its workloads' SVIDs with a certificate request over a key made on
// the node, and follows its change feed.
type ServerIssuer struct {
	// URL is the server's base URL; Token a bearer token of role operator.
	URL, Token string
	// Tokens, when set, hands out the current token instead of Token (a
	// token file the kubelet rotates).
	Tokens *tokenfile.Source
	// Node is this node's name, as its heartbeats give it.
	Node string
	// Client makes the calls (nil: one with a 30 s timeout); the change
	// feed's long poll has a context of its own.
	Client *http.Client
	// Wait is how long a change poll is held (zero: 25 s).
	Wait time.Duration
}

func (s *ServerIssuer) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	return defaultClient
}

var defaultClient = &http.Client{Timeout: 30 * time.Second}

func toProto(w identity.Workload) agentproto.Workload {
	return agentproto.Workload{Container: w.Container, Image: w.Image, Namespace: w.Namespace, Pod: w.Pod,
		ServiceAccount: w.ServiceAccount, App: w.App, Labels: w.Labels}
}

// IssueX509 asks an X.509-SVID over key's public part: the request is a
// CSR signed with key, so the server sees proof of possession and never
// the key.
func (s *ServerIssuer) IssueX509(ctx context.Context, w identity.Workload, key crypto.Signer) (identity.X509SVID, error) {
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return identity.X509SVID{}, fmt.Errorf("making a certificate request: %w", err)
	}
	var out agentproto.X509Response
	if err := s.call(ctx, http.MethodPost, agentproto.IdentityX509Path, agentproto.X509Request{Node: s.Node, Workload: toProto(w), CSR: csr}, &out); err != nil {
		return identity.X509SVID{}, err
	}
	id, err := spiffeid.FromString(out.SpiffeID)
	if err != nil {
		return identity.X509SVID{}, fmt.Errorf("reading the issued SPIFFE ID %q: %w", out.SpiffeID, err)
	}
	svid := identity.X509SVID{ID: id}
	for _, der := range out.Chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return identity.X509SVID{}, fmt.Errorf("reading the issued chain: %w", err)
		}
		svid.Chain = append(svid.Chain, c)
	}
	if len(svid.Chain) == 0 {
		return identity.X509SVID{}, errors.New("the server issued an empty chain")
	}
	if pub, ok := svid.Chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
		return identity.X509SVID{}, errors.New("the server issued a certificate over another key")
	}
	return svid, nil
}

// IssueJWT asks a JWT-SVID for audiences.
func (s *ServerIssuer) IssueJWT(ctx context.Context, w identity.Workload, audiences []string) (string, time.Time, error) {
	var out agentproto.JWTResponse
	if err := s.call(ctx, http.MethodPost, agentproto.IdentityJWTPath, agentproto.JWTRequest{Node: s.Node, Workload: toProto(w), Audiences: audiences}, &out); err != nil {
		return "", time.Time{}, err
	}
	return out.Token, out.ExpiresAt, nil
}

// Bundle fetches the trust bundle (SPIFFE JWKS); its trust domain is the
// one its roots name.
func (s *ServerIssuer) Bundle(ctx context.Context) (*spiffebundle.Bundle, error) {
	var raw json.RawMessage
	if err := s.call(ctx, http.MethodGet, agentproto.IdentityBundlePath, nil, &raw); err != nil {
		return nil, err
	}
	probe, err := spiffebundle.Parse(spiffeid.RequireTrustDomainFromString("bundle.invalid"), raw)
	if err != nil {
		return nil, fmt.Errorf("reading the trust bundle: %w", err)
	}
	roots := probe.X509Authorities()
	if len(roots) == 0 || len(roots[0].URIs) != 1 {
		return nil, errors.New("reading the trust bundle: no root names its trust domain")
	}
	id, err := spiffeid.FromURI(roots[0].URIs[0])
	if err != nil {
		return nil, fmt.Errorf("reading the trust bundle's trust domain: %w", err)
	}
	return spiffebundle.Parse(id.TrustDomain(), raw)
}

// FederatedBundles fetches the bundles of the trust domains the server
// federates with.
func (s *ServerIssuer) FederatedBundles(ctx context.Context) ([]*spiffebundle.Bundle, error) {
	var out struct {
		Bundles map[string]json.RawMessage `json:"bundles"`
	}
	if err := s.call(ctx, http.MethodGet, agentproto.IdentityBundlesPath, nil, &out); err != nil {
		return nil, err
	}
	var bs []*spiffebundle.Bundle
	for id, raw := range out.Bundles {
		td, err := spiffeid.TrustDomainFromString(id)
		if err != nil {
			return nil, fmt.Errorf("reading the federated bundles: %w", err)
		}
		b, err := spiffebundle.Parse(td, raw)
		if err != nil {
			return nil, fmt.Errorf("reading the bundle of %q: %w", td.Name(), err)
		}
		bs = append(bs, b)
	}
	return bs, nil
}

// Changes long-polls the server's feed of certification changes.
func (s *ServerIssuer) Changes(ctx context.Context, seq int64) ([]string, int64, error) {
	wait := s.Wait
	if wait <= 0 {
		wait = 25 * time.Second
	}
	q := url.Values{"after": {strconv.FormatInt(seq, 10)}, "wait": {strconv.Itoa(int(wait / time.Second))}}
	if seq < 0 {
		q = url.Values{} // the current sequence number, at once
	}
	cctx, cancel := context.WithTimeout(ctx, wait+30*time.Second)
	defer cancel()
	var out agentproto.Changes
	if err := s.callWith(cctx, &http.Client{Transport: s.client().Transport}, http.MethodGet, agentproto.IdentityChangesPath+"?"+q.Encode(), nil, &out); err != nil {
		return nil, seq, err
	}
	return out.Digests, out.Seq, nil
}

func (s *ServerIssuer) call(ctx context.Context, method, path string, body, out any) error {
	return s.callWith(ctx, s.client(), method, path, body, out)
}

// callWith sends body as JSON and decodes a 200 answer into out; a 403
// with a reason is the server's refusal (*identity.Refusal).
func (s *ServerIssuer) callWith(ctx context.Context, c *http.Client, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	u := strings.TrimRight(s.URL, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("asking %q: %w", u, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	token := s.Token
	if s.Tokens != nil {
		token = s.Tokens.Token()
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("asking %q: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		s.Tokens.Refused(token)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("reading the answer of %q: %w", u, err)
	}
	if resp.StatusCode == http.StatusForbidden {
		var ref agentproto.Refusal
		if json.Unmarshal(b, &ref) == nil && ref.Reason != "" {
			return &identity.Refusal{Reason: ref.Reason, Detail: ref.Detail}
		}
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("asking %q: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("reading the answer of %q: %w", u, err)
	}
	return nil
}
