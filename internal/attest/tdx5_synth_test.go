package attest_test

// TDX quote v5 on synthetic quotes (attesttest.SGXPlatform.TDXQuoteV5: the
// real v4 quote's layout, re-framed as v5 and re-signed under the
// synthetic Intel PKI), both body types: TD report 1.0 and 1.5. No real v5
// quote with collateral is published in a module reachable here.

import (
	"encoding/binary"
	"os"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/attest/attesttest"
)

type tdx5Fixture struct {
	*sgxFixture
	tmpl, tcbInfo, qeID []byte
	td                  attesttest.TD
	ext                 attesttest.TD15
}

func newTDX5(t testing.TB) *tdx5Fixture {
	t.Helper()
	read := func(p string) []byte {
		b, err := os.ReadFile("testdata/tdx/" + p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	f := &tdx5Fixture{sgxFixture: newSGX(t), tmpl: read("quote.dat"), tcbInfo: read("tcbinfo.json"), qeID: read("qeidentity.json")}
	f.td = attesttest.TD{MRTD: [48]byte{1, 2, 3}, MRConfigID: [48]byte{9}}
	f.td.RTMRs[3][0] = 0x33
	f.td.ReportData[0] = 0x42
	f.ext.TeeTCBSVN2[0], f.ext.MRSERVICETD[0] = 7, 0x5e
	return f
}

func (f *tdx5Fixture) quote(t testing.TB, td attesttest.TD, body uint16) []byte {
	t.Helper()
	q, err := f.p.TDXQuoteV5(f.tmpl, td, body, f.ext)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// verifier has the synthetic root and, unless status is "", TDX collateral
// re-issued for the platform with one TCB level of that status.
func (f *tdx5Fixture) verifier(t testing.TB, status string, o attest.Options) *attest.Verifier {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return synthNow }
	}
	o.IntelRoot = f.p.RootPEM()
	if status == "" {
		o.AllowMissingCollateral = true
	} else {
		q := f.quote(t, f.td, attesttest.TDReport10)
		col, err := f.p.TDXCollateral(f.tcbInfo, f.qeID, q[54:70], 18, status)
		if err != nil {
			t.Fatal(err)
		}
		o.TDX = col
	}
	v, err := attest.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSyntheticTDXv5(t *testing.T) {
	f := newTDX5(t)
	v := f.verifier(t, "UpToDate", attest.Options{})
	ref := attest.Reference{Kind: attest.TDX, Measurement: f.td.MRTD[:], HostData: f.td.MRConfigID[:], RTMRs: []attest.Hex{nil, nil, nil, f.td.RTMRs[3][:]}}
	for _, body := range []uint16{attesttest.TDReport10, attesttest.TDReport15} {
		q := f.quote(t, f.td, body)
		res, err := v.Verify(&attest.Evidence{Kind: attest.TDX, Data: q}, attest.Expect{ReportData: []byte{0x42}, References: []attest.Reference{ref}})
		if err != nil {
			t.Fatalf("body type %d: %v", body, err)
		}
		if res.TCBStatus != "UpToDate" || res.Debug || len(res.RTMRs) != 4 || res.TCB.PCKSerial == "" || res.TCB.TCBEvalNum != 18 {
			t.Fatalf("body type %d: result %+v", body, res)
		}
		p, err := attest.ParseTDXQuoteV5(q)
		if err != nil {
			t.Fatal(err)
		}
		if body == attesttest.TDReport15 && (p.Body.TeeTCBSVN2[0] != 7 || p.Body.MRSERVICETD[0] != 0x5e ||
			res.TCB.TeeTCBSVN2[0] != 7 || res.ServiceTD[0] != 0x5e) {
			t.Fatalf("TD report 1.5 fields %x %x", p.Body.TeeTCBSVN2, p.Body.MRSERVICETD)
		}
		if body == attesttest.TDReport10 && (p.Body.TeeTCBSVN2 != nil || p.Body.MRSERVICETD != nil || res.TCB.TeeTCBSVN2 != nil || res.ServiceTD != nil) {
			t.Fatal("TD report 1.0 has 1.5 fields")
		}
	}
	// Without collateral (allowed): the signatures and chain only.
	res, err := f.verifier(t, "", attest.Options{}).Verify(&attest.Evidence{Kind: attest.TDX, Data: f.quote(t, f.td, attesttest.TDReport15)}, attest.Expect{})
	if err != nil || res.TCBStatus != "unevaluated" {
		t.Fatalf("without collateral: %+v, %v", res, err)
	}
}

// Each refusal of a v5 quote has its typed reason.
func TestSyntheticTDXv5Refusals(t *testing.T) {
	f := newTDX5(t)
	other, err := attesttest.NewSGXPlatform(synthNow)
	if err != nil {
		t.Fatal(err)
	}
	good := f.quote(t, f.td, attesttest.TDReport15)
	verify := func(v *attest.Verifier, q []byte, e attest.Expect) error {
		_, err := v.Verify(&attest.Evidence{Kind: attest.TDX, Data: q}, e)
		return err
	}
	changed := func(mut func(q []byte)) []byte { // good with mut applied, not signed again
		q := append([]byte(nil), good...)
		mut(q)
		return q
	}
	for _, tc := range []struct {
		name string
		run  func() error
		want attest.Reason
	}{
		{"debug TD", func() error {
			d := f.td
			d.Debug = true
			return verify(f.verifier(t, "UpToDate", attest.Options{}), f.quote(t, d, attesttest.TDReport15), attest.Expect{})
		}, attest.ReasonDebug},
		{"another root", func() error {
			o := attest.Options{Now: func() time.Time { return synthNow }, IntelRoot: other.RootPEM(), AllowMissingCollateral: true}
			v, err := attest.New(o)
			if err != nil {
				return err
			}
			return verify(v, good, attest.Expect{})
		}, attest.ReasonRoot},
		{"Intel's real root", func() error {
			v, err := attest.New(attest.Options{Now: func() time.Time { return synthNow }, AllowMissingCollateral: true})
			if err != nil {
				return err
			}
			return verify(v, good, attest.Expect{})
		}, attest.ReasonRoot},
		{"nonce", func() error {
			return verify(f.verifier(t, "UpToDate", attest.Options{}), good, attest.Expect{ReportData: []byte{0x43}})
		}, attest.ReasonNonce},
		{"MRTD", func() error {
			r := attest.Reference{Kind: attest.TDX, Measurement: make([]byte, 48)}
			return verify(f.verifier(t, "UpToDate", attest.Options{}), good, attest.Expect{References: []attest.Reference{r}})
		}, attest.ReasonMeasurement},
		{"TCB out of date", func() error {
			return verify(f.verifier(t, "OutOfDate", attest.Options{}), good, attest.Expect{})
		}, attest.ReasonTCBOutOfDate},
		{"TCB revoked", func() error {
			return verify(f.verifier(t, "Revoked", attest.Options{}), good, attest.Expect{})
		}, attest.ReasonTCBRevoked},
		{"collateral expired", func() error {
			late := attest.Options{Now: func() time.Time { return synthNow.Add(31 * 24 * time.Hour) }} // past the TCB info's next update
			return verify(f.verifier(t, "UpToDate", late), good, attest.Expect{})
		}, attest.ReasonCollateralExpired},
		{"no collateral", func() error {
			v, err := attest.New(attest.Options{Now: func() time.Time { return synthNow }, IntelRoot: f.p.RootPEM()})
			if err != nil {
				return err
			}
			return verify(v, good, attest.Expect{})
		}, attest.ReasonCollateralExpired},
		{"body type 4", func() error {
			return verify(f.verifier(t, "", attest.Options{}), changed(func(q []byte) { binary.LittleEndian.PutUint16(q[48:50], 4) }), attest.Expect{})
		}, attest.ReasonMalformed},
		{"body size of 1.0 with type 1.5", func() error {
			return verify(f.verifier(t, "", attest.Options{}), changed(func(q []byte) { binary.LittleEndian.PutUint32(q[50:54], 584) }), attest.Expect{})
		}, attest.ReasonMalformed},
		{"truncated", func() error {
			return verify(f.verifier(t, "", attest.Options{}), good[:len(good)-1], attest.Expect{})
		}, attest.ReasonMalformed},
		{"TEE_TCB_SVN2 changed", func() error {
			return verify(f.verifier(t, "", attest.Options{}), changed(func(q []byte) { q[54+584] ^= 1 }), attest.Expect{})
		}, attest.ReasonSignature},
	} {
		t.Run(tc.name, func(t *testing.T) { reasonIs(t, tc.run(), tc.want) })
	}
}
