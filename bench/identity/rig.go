package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/trust"
)

const node = "bench-node"

var td = spiffeid.RequireTrustDomainFromString("bench.example")

// rig is a bulwark server's identity side: store, audited API handler,
// feed, served on loopback.
type rig struct {
	st        *store.Store
	authority *identity.Authority
	srv       *httptest.Server
	admin, op string
	stop      context.CancelFunc
}

func digest(i int) string { return fmt.Sprintf("sha256:%064x", i) }

func newRig(ctx context.Context, dir string) (*rig, error) {
	st, err := store.Open(ctx, filepath.Join(dir, "bulwark.db"))
	if err != nil {
		return nil, err
	}
	auditor := api.NewAuditor(st, "")
	h := api.New(st, auditor, nil, slog.New(slog.DiscardHandler))
	h.UseLimits(api.Limits{Rate: -1, InFlight: 1 << 20})
	root, err := identity.NewRoot(td, 0, time.Now())
	if err != nil {
		return nil, err
	}
	a, err := identity.New(identity.Config{TrustDomain: td, Root: root})
	if err != nil {
		return nil, err
	}
	tmpl, err := identity.ParseTemplate("spiffe://{trustDomain}/ns/{namespace}/container/{container}")
	if err != nil {
		return nil, err
	}
	rctx, stop := context.WithCancel(ctx)
	feed := trust.NewFeed(st, 0, nil)
	reg := trust.NewRegistry()
	feed.OnChange = reg.Invalidate
	h.UseIdentity(api.IdentityConfig{Authority: a, Template: tmpl, Facts: trust.Facts(st), Feed: feed, Decisions: reg})
	r := &rig{st: st, authority: a, srv: httptest.NewServer(h), stop: stop}
	admin, err := api.CreateToken(ctx, auditor, "bench", "admin", store.RoleAdmin)
	if err != nil {
		return nil, err
	}
	op, err := api.CreateToken(ctx, auditor, "bench", "agent", store.RoleOperator)
	if err != nil {
		return nil, err
	}
	r.admin, r.op = admin.Token, op.Token
	go feed.Run(rctx)
	go r.heartbeats(rctx)
	return r, nil
}

// heartbeats keeps the node heard from, as its agent would.
func (r *rig) heartbeats(ctx context.Context) {
	for {
		r.st.PutNode(ctx, store.Node{Name: node, Mode: "detect", State: agentproto.StateDetectingOnly, Containers: "[]"})
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Second):
		}
	}
}

func (r *rig) close() {
	r.stop()
	r.srv.Close()
	r.st.Close()
}

// setCertification changes a digest's certification through the API, as
// an admin or the re-evaluation does (audited: the feed sees it).
func (r *rig) setCertification(ctx context.Context, d, status string) error {
	if _, err := r.st.Image(ctx, d); err != nil {
		if err := r.st.PutImage(ctx, store.Image{Digest: d, Repository: "bench.example/app"}); err != nil {
			return err
		}
	}
	body, _ := json.Marshal(api.CertificationRequest{Status: status, Reason: "bench"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.srv.URL+"/api/v1/images/"+d+"/certification", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+r.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("setting %s %s: %s %s", d, status, resp.Status, b)
	}
	return nil
}

// issue asks one X.509-SVID over csr through the route.
func (r *rig) issue(ctx context.Context, c *http.Client, container, image string, csr []byte) error {
	body, _ := json.Marshal(agentproto.X509Request{Node: node, CSR: csr,
		Workload: agentproto.Workload{Container: container, Image: image, Namespace: "bench"}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.srv.URL+agentproto.IdentityX509Path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+r.op)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("issuing: %s %s", resp.Status, b)
	}
	var out agentproto.X509Response
	if err := json.Unmarshal(b, &out); err != nil || len(out.Chain) == 0 {
		return fmt.Errorf("issuing: %v", err)
	}
	_, err = x509.ParseCertificate(out.Chain[0])
	return err
}
