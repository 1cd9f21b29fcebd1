package instance_test

import (
	"context"
	"os"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/attest/attesttest"
	"github.com/bulwark-sec/bulwark/internal/instance"
)

// A trust domain attesting with a TDX v5 quote (TD report 1.5) registers
// with the server's nonce in REPORTDATA, is kept by TDX TCB info marking
// its level UpToDate and revoked by TCB info marking it OutOfDate: the
// same lifecycle as v4 (TestTDXInstance), through Bulwark's v5 verifier.
func TestTDXv5Instance(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sqliteOnly, instance.Policy{})
	p, err := attesttest.NewSGXPlatform(t0)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile("../attest/testdata/tdx/quote.dat")
	if err != nil {
		t.Fatal(err)
	}
	td := attesttest.TD{MRTD: [48]byte{8}}
	w.pred.References = append(w.pred.References, attest.Reference{Kind: attest.TDX, Measurement: td.MRTD[:]})
	c, err := w.tr.Challenge(ctx, "token:1", "td5-1")
	if err != nil {
		t.Fatal(err)
	}
	copy(td.ReportData[:], attest.Binding(c.Nonce, nil))
	q, err := p.TDXQuoteV5(tmpl, td, attesttest.TDReport15, attesttest.TD15{})
	if err != nil {
		t.Fatal(err)
	}
	tdxCol := func(status string) *attest.Verifier { return tdxVerifier(t, w, p, q[54:70], status) }
	if _, err := w.tr.UseVerifier(ctx, "test", "sha256:tdx5-18", tdxCol("UpToDate")); err != nil {
		t.Fatal(err)
	}
	in, err := w.tr.Register(ctx, "token:1", instance.Registration{ID: "td5-1", Workload: "vm", Image: image, Nonce: c.Nonce,
		Evidence: attest.Evidence{Kind: attest.TDX, Data: q}})
	mustStatus(t, in, err, instance.Verified, "")
	if in.Result.TCBStatus != "UpToDate" {
		t.Fatalf("TCB status %q", in.Result.TCBStatus)
	}
	revoked, err := w.tr.UseVerifier(ctx, "system:collateral", "sha256:tdx5-19", tdxCol("OutOfDate"))
	if err != nil || len(revoked) != 1 || revoked[0] != "td5-1" {
		t.Fatalf("OutOfDate collateral revoked %v (%v)", revoked, err)
	}
}

// tdxVerifier is a verifier with TDX collateral re-issued for p: one TCB
// level at its PCK SVNs and teeTCBSVN, of status.
func tdxVerifier(t *testing.T, w *world, p *attesttest.SGXPlatform, teeTCBSVN []byte, status string) *attest.Verifier {
	t.Helper()
	read := func(f string) []byte {
		b, err := os.ReadFile("../attest/testdata/tdx/" + f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	col, err := p.TDXCollateral(read("tcbinfo.json"), read("qeidentity.json"), teeTCBSVN, 18, status)
	if err != nil {
		t.Fatal(err)
	}
	v, err := attest.New(attest.Options{Now: w.clk.Now, IntelRoot: p.RootPEM(), TDX: col, SNPRoots: w.snp.Roots()})
	if err != nil {
		t.Fatal(err)
	}
	return v
}
