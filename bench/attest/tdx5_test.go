package attest

import (
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/attest/attesttest"
)

// A synthetic TDX v5 quote with a TD report 1.5 body (the real v4 quote's
// layout re-framed and re-signed) with full collateral re-issued for the
// synthetic platform: the PCK chain, QE report and quote signatures are
// checked on every quote, the collateral documents' signatures once.
func BenchmarkVerifyTDXv5Synthetic(b *testing.B) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	p, err := attesttest.NewSGXPlatform(now)
	if err != nil {
		b.Fatal(err)
	}
	q, err := p.TDXQuoteV5(read(b, "tdx/quote.dat"), attesttest.TD{MRTD: [48]byte{1}}, attesttest.TDReport15, attesttest.TD15{})
	if err != nil {
		b.Fatal(err)
	}
	col, err := p.TDXCollateral(read(b, "tdx/tcbinfo.json"), read(b, "tdx/qeidentity.json"), q[54:70], 18, "UpToDate")
	if err != nil {
		b.Fatal(err)
	}
	v, err := attest.New(attest.Options{Now: at(now), IntelRoot: p.RootPEM(), TDX: col})
	if err != nil {
		b.Fatal(err)
	}
	verifyParallel(b, v, &attest.Evidence{Kind: attest.TDX, Data: q})
}
