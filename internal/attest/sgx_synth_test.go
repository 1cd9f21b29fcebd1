package attest_test

// SGX on synthetic quotes: a test PKI stands in for Intel's (no real DCAP
// quote with collateral is published in a reachable module). Kept apart
// from real_test.go on purpose.

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/attest/attesttest"
)

var synthNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

type sgxFixture struct {
	p   *attesttest.SGXPlatform
	col *attest.IntelCollateral
	enc attesttest.Enclave
}

func newSGX(t testing.TB) *sgxFixture {
	t.Helper()
	p, err := attesttest.NewSGXPlatform(synthNow)
	if err != nil {
		t.Fatal(err)
	}
	col, err := p.Collateral(17, false)
	if err != nil {
		t.Fatal(err)
	}
	e := attesttest.Enclave{MRENCLAVE: sha256.Sum256([]byte("app")), MRSIGNER: sha256.Sum256([]byte("vendor")), ProductID: 3, SVN: 2}
	e.ReportData[0] = 0x42
	return &sgxFixture{p: p, col: col, enc: e}
}

func (f *sgxFixture) verifier(t testing.TB, o attest.Options) *attest.Verifier {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return synthNow }
	}
	if o.IntelRoot == nil {
		o.IntelRoot = f.p.RootPEM()
	}
	if o.SGX == nil {
		o.SGX = f.col
	}
	v, err := attest.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (f *sgxFixture) quote(t testing.TB, e attesttest.Enclave) *attest.Evidence {
	t.Helper()
	q, err := f.p.Quote(e)
	if err != nil {
		t.Fatal(err)
	}
	return &attest.Evidence{Kind: attest.SGX, Data: q}
}

func reasonIs(t *testing.T, err error, want attest.Reason) {
	t.Helper()
	if got := attest.ReasonOf(err); got != want {
		t.Fatalf("reason = %q, want %q (err: %v)", got, want, err)
	}
}

func TestSyntheticSGXVerifies(t *testing.T) {
	f := newSGX(t)
	res, err := f.verifier(t, attest.Options{}).Verify(f.quote(t, f.enc), attest.Expect{
		ReportData: []byte{0x42},
		References: []attest.Reference{{Kind: attest.SGX, Measurement: f.enc.MRENCLAVE[:], Signer: f.enc.MRSIGNER[:]}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.TCBStatus != "UpToDate" || res.SVN != 2 || res.ProductID != 3 || res.TCB.FMSPC != attesttest.FMSPC {
		t.Fatalf("result %+v", res)
	}
}

func TestSyntheticSGXRefusals(t *testing.T) {
	f := newSGX(t)
	other, err := attesttest.NewSGXPlatform(synthNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		run  func() error
		want attest.Reason
	}{
		{"debug enclave", func() error {
			e := f.enc
			e.Debug = true
			_, err := f.verifier(t, attest.Options{}).Verify(f.quote(t, e), attest.Expect{})
			return err
		}, attest.ReasonDebug},
		{"chain to another root", func() error {
			_, err := f.verifier(t, attest.Options{IntelRoot: other.RootPEM(), SGX: mustCol(t, other, 17, false)}).Verify(f.quote(t, f.enc), attest.Expect{})
			return err
		}, attest.ReasonRoot},
		{"collateral from another root", func() error {
			_, err := attest.New(attest.Options{IntelRoot: f.p.RootPEM(), SGX: mustCol(t, other, 17, false)})
			return err
		}, attest.ReasonRoot},
		{"TCB out of date", func() error {
			col := mustCol(t, f.p, 18, false, attesttest.Level{CPUSVN: 6, PCESVN: 11, Status: "UpToDate"}, attesttest.Level{CPUSVN: 5, PCESVN: 11, Status: "OutOfDate"})
			_, err := f.verifier(t, attest.Options{SGX: col}).Verify(f.quote(t, f.enc), attest.Expect{})
			return err
		}, attest.ReasonTCBOutOfDate},
		{"TCB below every level", func() error {
			col := mustCol(t, f.p, 18, false, attesttest.Level{CPUSVN: 6, PCESVN: 11, Status: "UpToDate"})
			_, err := f.verifier(t, attest.Options{SGX: col}).Verify(f.quote(t, f.enc), attest.Expect{})
			return err
		}, attest.ReasonTCBOutOfDate},
		{"TCB revoked", func() error {
			col := mustCol(t, f.p, 18, false, attesttest.Level{CPUSVN: 5, PCESVN: 11, Status: "Revoked"})
			_, err := f.verifier(t, attest.Options{SGX: col}).Verify(f.quote(t, f.enc), attest.Expect{})
			return err
		}, attest.ReasonTCBRevoked},
		{"PCK certificate revoked", func() error {
			_, err := f.verifier(t, attest.Options{SGX: mustCol(t, f.p, 17, true)}).Verify(f.quote(t, f.enc), attest.Expect{})
			return err
		}, attest.ReasonTCBRevoked},
		{"expired collateral", func() error {
			_, err := f.verifier(t, attest.Options{Now: func() time.Time { return synthNow.Add(31 * 24 * time.Hour) }}).Verify(f.quote(t, f.enc), attest.Expect{})
			return err
		}, attest.ReasonCollateralExpired},
		{"nonce mismatch", func() error {
			_, err := f.verifier(t, attest.Options{}).Verify(f.quote(t, f.enc), attest.Expect{ReportData: []byte{0x43}})
			return err
		}, attest.ReasonNonce},
		{"measurement mismatch", func() error {
			_, err := f.verifier(t, attest.Options{}).Verify(f.quote(t, f.enc), attest.Expect{References: []attest.Reference{{Kind: attest.SGX, Measurement: make([]byte, 32)}}})
			return err
		}, attest.ReasonMeasurement},
		{"signer not accepted", func() error {
			_, err := f.verifier(t, attest.Options{Policy: attest.Policy{Signers: []attest.Hex{make([]byte, 32)}}}).Verify(f.quote(t, f.enc), attest.Expect{})
			return err
		}, attest.ReasonMeasurement},
		{"SVN below minimum", func() error {
			_, err := f.verifier(t, attest.Options{Policy: attest.Policy{MinSVN: 3}}).Verify(f.quote(t, f.enc), attest.Expect{})
			return err
		}, attest.ReasonPolicy},
	} {
		t.Run(tc.name, func(t *testing.T) { reasonIs(t, tc.run(), tc.want) })
	}
}

func mustCol(t testing.TB, p *attesttest.SGXPlatform, n int, revoke bool, l ...attesttest.Level) *attest.IntelCollateral {
	t.Helper()
	c, err := p.Collateral(n, revoke, l...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
