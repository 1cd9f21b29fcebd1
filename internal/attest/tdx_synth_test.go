package attest_test

// TDX on synthetic quotes: the real quote's layout re-signed under the
// synthetic Intel PKI (attesttest.SGXPlatform.TDXQuote), so that a debug
// TD, a chosen nonce and chosen measurements can be shown. Signatures and
// the PCK chain only: the synthetic platform has no TDX collateral.

import (
	"os"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/attest/attesttest"
)

func TestSyntheticTDX(t *testing.T) {
	f := newSGX(t)
	tmpl, err := os.ReadFile("testdata/tdx/quote.dat")
	if err != nil {
		t.Fatal(err)
	}
	td := attesttest.TD{MRTD: [48]byte{1, 2, 3}, MRConfigID: [48]byte{9}}
	td.RTMRs[2][0] = 0x22
	td.ReportData[0] = 0x42
	quote := func(td attesttest.TD) *attest.Evidence {
		q, err := f.p.TDXQuote(tmpl, td)
		if err != nil {
			t.Fatal(err)
		}
		return &attest.Evidence{Kind: attest.TDX, Data: q}
	}
	verifier := func(o attest.Options) *attest.Verifier {
		o.Now, o.AllowMissingCollateral = func() time.Time { return synthNow }, true
		if o.IntelRoot == nil {
			o.IntelRoot = f.p.RootPEM()
		}
		v, err := attest.New(o)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ref := attest.Reference{Kind: attest.TDX, Measurement: td.MRTD[:], HostData: td.MRConfigID[:], RTMRs: []attest.Hex{nil, nil, td.RTMRs[2][:]}}
	res, err := verifier(attest.Options{}).Verify(quote(td), attest.Expect{ReportData: []byte{0x42}, References: []attest.Reference{ref}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Debug || len(res.RTMRs) != 4 || res.TCB.PCKSerial == "" {
		t.Fatalf("result %+v", res)
	}
	other, _ := attesttest.NewSGXPlatform(synthNow)
	for _, tc := range []struct {
		name string
		run  func() error
		want attest.Reason
	}{
		{"debug TD", func() error {
			d := td
			d.Debug = true
			_, err := verifier(attest.Options{}).Verify(quote(d), attest.Expect{})
			return err
		}, attest.ReasonDebug},
		{"another root", func() error {
			_, err := verifier(attest.Options{IntelRoot: other.RootPEM()}).Verify(quote(td), attest.Expect{})
			return err
		}, attest.ReasonRoot},
		{"Intel's real root", func() error {
			v, err := attest.New(attest.Options{Now: func() time.Time { return synthNow }, AllowMissingCollateral: true})
			if err != nil {
				return err
			}
			_, err = v.Verify(quote(td), attest.Expect{})
			return err
		}, attest.ReasonRoot},
		{"nonce", func() error {
			_, err := verifier(attest.Options{}).Verify(quote(td), attest.Expect{ReportData: []byte{0x43}})
			return err
		}, attest.ReasonNonce},
		{"RTMR2", func() error {
			r := ref
			r.RTMRs = []attest.Hex{nil, nil, make([]byte, 48)}
			_, err := verifier(attest.Options{}).Verify(quote(td), attest.Expect{References: []attest.Reference{r}})
			return err
		}, attest.ReasonMeasurement},
		{"no collateral", func() error {
			v, err := attest.New(attest.Options{Now: func() time.Time { return synthNow }, IntelRoot: f.p.RootPEM()})
			if err != nil {
				return err
			}
			_, err = v.Verify(quote(td), attest.Expect{})
			return err
		}, attest.ReasonCollateralExpired},
	} {
		t.Run(tc.name, func(t *testing.T) { reasonIs(t, tc.run(), tc.want) })
	}
}

// With TDX collateral re-issued for the synthetic platform (Intel's TCB
// info and TD_QE identity bodies, re-dated and re-signed): the success
// path the expired real collateral cannot show, and new TCB info marking
// the level OutOfDate, at verification and by Rejudge.
func TestSyntheticTDXCollateral(t *testing.T) {
	f := newSGX(t)
	read := func(p string) []byte {
		b, err := os.ReadFile("testdata/tdx/" + p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tmpl := read("quote.dat")
	q, err := f.p.TDXQuote(tmpl, attesttest.TD{MRTD: [48]byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	ev := &attest.Evidence{Kind: attest.TDX, Data: q}
	at := func() time.Time { return synthNow }
	inspect, err := attest.New(attest.Options{Now: at, IntelRoot: f.p.RootPEM(), AllowMissingCollateral: true})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := inspect.Verify(ev, attest.Expect{})
	if err != nil {
		t.Fatal(err)
	}
	withCol := func(status string) *attest.Verifier {
		col, err := f.p.TDXCollateral(read("tcbinfo.json"), read("qeidentity.json"), raw.TCB.TeeTCBSVN, 18, status)
		if err != nil {
			t.Fatal(err)
		}
		v, err := attest.New(attest.Options{Now: at, IntelRoot: f.p.RootPEM(), TDX: col})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	res, err := withCol("UpToDate").Verify(ev, attest.Expect{})
	if err != nil {
		t.Fatal(err)
	}
	if res.TCBStatus != "UpToDate" {
		t.Fatalf("TCB status %q", res.TCBStatus)
	}
	outOfDate := withCol("OutOfDate")
	_, err = outOfDate.Verify(ev, attest.Expect{})
	reasonIs(t, err, attest.ReasonTCBOutOfDate)
	reasonIs(t, outOfDate.Rejudge(res), attest.ReasonTCBOutOfDate)
	reasonIs(t, withCol("Revoked").Rejudge(res), attest.ReasonTCBRevoked)
	if err := withCol("UpToDate").Rejudge(res); err != nil {
		t.Fatal(err)
	}
}

// TDX accepts UpToDate alone, at verification (go-tdx-guest) and when
// re-judged, whatever the policy accepts for SGX.
func TestTDXAcceptsUpToDateOnly(t *testing.T) {
	f := newSGX(t)
	read := func(p string) []byte { b, _ := os.ReadFile("testdata/tdx/" + p); return b }
	q, err := f.p.TDXQuote(read("quote.dat"), attesttest.TD{})
	if err != nil {
		t.Fatal(err)
	}
	at := func() time.Time { return synthNow }
	inspect, _ := attest.New(attest.Options{Now: at, IntelRoot: f.p.RootPEM(), AllowMissingCollateral: true})
	res, err := inspect.Verify(&attest.Evidence{Kind: attest.TDX, Data: q}, attest.Expect{})
	if err != nil {
		t.Fatal(err)
	}
	col, err := f.p.TDXCollateral(read("tcbinfo.json"), read("qeidentity.json"), res.TCB.TeeTCBSVN, 18, "SWHardeningNeeded")
	if err != nil {
		t.Fatal(err)
	}
	v, err := attest.New(attest.Options{Now: at, IntelRoot: f.p.RootPEM(), TDX: col, Policy: attest.Policy{TCBStatuses: []string{"SWHardeningNeeded"}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(&attest.Evidence{Kind: attest.TDX, Data: q}, attest.Expect{})
	reasonIs(t, err, attest.ReasonTCBOutOfDate)
	reasonIs(t, v.Rejudge(res), attest.ReasonTCBOutOfDate)
}

// The collateral's verdict on a platform is remembered, its limits are
// not stretched: a warm verifier still checks every quote's signatures
// (every bit of the signed header and TD report flipped is refused), and
// refuses once the collateral expires.
func TestTDXWarmCollateral(t *testing.T) {
	f := newSGX(t)
	read := func(p string) []byte { b, _ := os.ReadFile("testdata/tdx/" + p); return b }
	q, err := f.p.TDXQuote(read("quote.dat"), attesttest.TD{MRTD: [48]byte{5}})
	if err != nil {
		t.Fatal(err)
	}
	ev := &attest.Evidence{Kind: attest.TDX, Data: q}
	now := synthNow
	clock := func() time.Time { return now }
	inspect, _ := attest.New(attest.Options{Now: clock, IntelRoot: f.p.RootPEM(), AllowMissingCollateral: true})
	res, err := inspect.Verify(ev, attest.Expect{})
	if err != nil {
		t.Fatal(err)
	}
	col, err := f.p.TDXCollateral(read("tcbinfo.json"), read("qeidentity.json"), res.TCB.TeeTCBSVN, 18, "UpToDate")
	if err != nil {
		t.Fatal(err)
	}
	v, err := attest.New(attest.Options{Now: clock, IntelRoot: f.p.RootPEM(), TDX: col})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // cold, then warm
		if _, err := v.Verify(ev, attest.Expect{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 632; i += 7 { // header and TD report, every seventh byte
		m := append([]byte(nil), q...)
		m[i] ^= 0x10
		if _, err := v.Verify(&attest.Evidence{Kind: attest.TDX, Data: m}, attest.Expect{}); attest.ReasonOf(err) == "" {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	now = synthNow.Add(31 * 24 * time.Hour) // past the TCB info's next update
	_, err = v.Verify(ev, attest.Expect{})
	reasonIs(t, err, attest.ReasonCollateralExpired)
}
