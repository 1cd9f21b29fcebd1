package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/attest/attesttest"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/instance"
	"github.com/bulwark-sec/bulwark/internal/pgtest"
	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// TestIdentityTEEReplicas: two replicas on one database, each with its
// own instance tracker. An instance registered, then revoked by new
// collateral, on replica A is decided on by replica B as soon as B's
// change feed names its digest (B reloads its tracker before waking its
// agents): issued while verified, refused (unattested, revoked) after,
// at the default feed poll. On SQLite and on PostgreSQL (the database
// replicas share).
func TestIdentityTEEReplicas(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testIdentityTEEReplicas(t, "") })
	t.Run("postgres", func(t *testing.T) { testIdentityTEEReplicas(t, pgtest.Start(t)) })
}

func testIdentityTEEReplicas(t *testing.T, dsn string) {
	ctx := t.Context()
	dir := t.TempDir()
	st, err := OpenStoreAt(ctx, dir, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const digest = "sha256:" + "ee00000000000000000000000000000000000000000000000000000000000000"
	if err := st.PutImage(ctx, store.Image{Digest: digest, Repository: "registry.example/pay"}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetCertification(ctx, digest, store.Certified, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutNode(ctx, store.Node{Name: "n1", Mode: "detect", State: agentproto.StateDetectingOnly, Containers: "[]"}); err != nil {
		t.Fatal(err)
	}
	_, op, _ := st.CreateToken(ctx, "agent", store.RoleOperator)

	tcb := attest.SNPTCB{Bootloader: 3, SNP: 8, Microcode: 115}
	snp, err := attesttest.NewSNPPlatform(time.Now().Add(-24*time.Hour), tcb)
	if err != nil {
		t.Fatal(err)
	}
	guest := attesttest.Guest{Measurement: sha512.Sum384([]byte("pay")), SVN: 1}
	pred := &attest.ReferencePredicate{References: []attest.Reference{{Kind: attest.SNP, Measurement: guest.Measurement[:]}}}
	verifier := func(p attest.Policy) *attest.Verifier {
		v, err := attest.New(attest.Options{SNPRoots: snp.Roots(), Policy: p})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tracker := func() *instance.Tracker {
		tr, err := instance.New(instance.Config{Auditor: api.NewAuditor(st, ""), Verifier: verifier(attest.Policy{}), Logger: slog.New(slog.DiscardHandler),
			References: func(context.Context, string) (*attest.ReferencePredicate, error) { return pred, nil }})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	trA, trB := tracker(), tracker()

	raw := make([]byte, 32)
	rand.Read(raw)
	key, _ := seal.New(raw)
	h := api.New(st, api.NewAuditor(st, ""), &api.Metrics{Images: api.CountImages(st.DB())}, slog.New(slog.DiscardHandler))
	ids, err := setupIdentity(IdentityConfig{TrustDomain: "tee.example", Template: "spiffe://{trustDomain}/ns/{namespace}/container/{container}",
		RequireTEE: []string{"ns:prod=sev-snp"}}, "", dir, st, key, h, http.DefaultClient, trB, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go ids.Run(ctx)
	srvB := httptest.NewServer(h)
	t.Cleanup(srvB.Close)
	call := func(method, path string, body any) (int, []byte) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, srvB.URL+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+op)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	seq := func() int64 {
		_, b := call("GET", "/api/v1/identity/changes", nil)
		var c agentproto.Changes
		json.Unmarshal(b, &c)
		return c.Seq
	}
	waitFeed := func(after int64) {
		_, b := call("GET", fmt.Sprintf("/api/v1/identity/changes?after=%d&wait=5", after), nil)
		if !strings.Contains(string(b), digest) {
			t.Fatalf("replica B's feed: %s", b)
		}
	}
	ask := func() (int, agentproto.Refusal) {
		k, _ := identity.NewKey()
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
		code, b := call("POST", agentproto.IdentityX509Path, agentproto.X509Request{Node: "n1", CSR: csr,
			Workload: agentproto.Workload{Container: "pay", Image: digest, Namespace: "prod"}})
		var ref agentproto.Refusal
		json.Unmarshal(b, &ref)
		return code, ref
	}

	// Replica A verifies the instance; B issues once its feed names it.
	s := seq()
	c, err := trA.Challenge(ctx, "token:1", "pay-vm-1")
	if err != nil {
		t.Fatal(err)
	}
	g := guest
	copy(g.ReportData[:], attest.Binding(c.Nonce, nil))
	ev, _ := snp.Evidence(g)
	in, err := trA.Register(ctx, "token:1", instance.Registration{ID: "pay-vm-1", Workload: "spiffe://tee.example/ns/prod/container/pay",
		Node: "n1", Region: "eu-west", Image: digest, Nonce: c.Nonce, Evidence: *ev})
	if err != nil || in.Status != instance.Verified {
		t.Fatalf("registering on A: %+v %v", in, err)
	}
	waitFeed(s)
	if code, ref := ask(); code != http.StatusOK {
		t.Fatalf("B after A verified the instance: %d %+v", code, ref)
	}

	// Replica A revokes it on new collateral; B refuses at its next feed.
	s = seq()
	min := tcb
	min.SNP++
	start := time.Now()
	if _, err := trA.UseVerifier(ctx, "system:collateral", "sha256:bulletin", verifier(attest.Policy{MinSNPTCB: min})); err != nil {
		t.Fatal(err)
	}
	waitFeed(s)
	if code, ref := ask(); code != http.StatusForbidden || ref.Reason != identity.ReasonUnattested || !strings.Contains(ref.Detail, "revoked") {
		t.Fatalf("B after A revoked the instance: %d %+v", code, ref)
	}
	took := time.Since(start)
	t.Logf("revocation on A to refusal on B: %s", took.Round(time.Millisecond))
	if took > time.Second {
		t.Fatalf("revocation on A to refusal on B took %s, more than 1 s", took)
	}
}
