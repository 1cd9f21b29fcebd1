package attest

// Tests on real evidence captured from real hardware, as published in the
// vendors' Go libraries (see testdata/README.md). No synthetic keys here.

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Dates the real evidence is judged at.
var (
	snpNow      = time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC) // inside the Milan VCEK's 2022-09-24..2029-09-24
	tdxCollDate = time.Date(2023, 7, 1, 1, 0, 0, 0, time.UTC)  // inside the TDX collateral's 2023-06-18..07-18 window
	tdxToday    = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC) // the collateral has long expired
	farFuture   = time.Date(2053, 7, 1, 1, 0, 0, 0, time.UTC)  // every certificate has expired
)

func readTestdata(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", p))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func realSNP(t testing.TB) *Evidence {
	return &Evidence{Kind: SNP, Data: readTestdata(t, "snp/report.bin"), VCEK: readTestdata(t, "snp/vcek.der")}
}

func realTDX(t testing.TB) *Evidence {
	return &Evidence{Kind: TDX, Data: readTestdata(t, "tdx/quote.dat")}
}

func realTDXCollateral(t testing.TB) *IntelCollateral {
	c, err := LoadIntelCollateral("testdata/tdx")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newVerifier(t testing.TB, o Options) *Verifier {
	t.Helper()
	v, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func at(tm time.Time) func() time.Time { return func() time.Time { return tm } }

func wantReason(t *testing.T, err error, want Reason) {
	t.Helper()
	if got := ReasonOf(err); got != want {
		t.Fatalf("reason = %q, want %q (err: %v)", got, want, err)
	}
}

// dbg is the policy the real SNP report needs: it was captured from a
// guest launched with debugging allowed (policy bit 19).
var dbg = Policy{AllowDebug: true}

func TestRealSNPVerifies(t *testing.T) {
	_, err := newVerifier(t, Options{Now: at(snpNow)}).Verify(realSNP(t), Expect{})
	wantReason(t, err, ReasonDebug)
	v := newVerifier(t, Options{Now: at(snpNow), Policy: dbg})
	res, err := v.Verify(realSNP(t), Expect{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Debug || res.Kind != SNP || len(res.Measurement) != 48 || res.TCB.SNP == nil {
		t.Fatalf("result %+v", res)
	}
	t.Logf("real Milan report: measurement %s, TCB %s, debug %v", res.Measurement, res.TCB.SNP, res.Debug)
	// Warm: the VCEK chain is remembered, the signature is checked again.
	if _, err := v.Verify(realSNP(t), Expect{}); err != nil {
		t.Fatal(err)
	}
	// Bound to the nonce it carries, and only to it.
	if _, err := v.Verify(realSNP(t), Expect{ReportData: res.ReportData}); err != nil {
		t.Fatal(err)
	}
	other := append([]byte(nil), res.ReportData...)
	other[63] ^= 1
	_, err = v.Verify(realSNP(t), Expect{ReportData: other})
	wantReason(t, err, ReasonNonce)
	// Reference values: the real measurement matches, another does not.
	if _, err := v.Verify(realSNP(t), Expect{References: []Reference{{Kind: SNP, Measurement: res.Measurement}}}); err != nil {
		t.Fatal(err)
	}
	m := append(Hex(nil), res.Measurement...)
	m[0] ^= 0x80
	_, err = v.Verify(realSNP(t), Expect{References: []Reference{{Kind: SNP, Measurement: m}}})
	wantReason(t, err, ReasonMeasurement)
}

func TestRealSNPRefusals(t *testing.T) {
	t.Run("expired VCEK", func(t *testing.T) {
		_, err := newVerifier(t, Options{Now: at(farFuture)}).Verify(realSNP(t), Expect{})
		wantReason(t, err, ReasonCollateralExpired)
	})
	t.Run("TCB below a raised minimum", func(t *testing.T) {
		res, err := newVerifier(t, Options{Now: at(snpNow), Policy: dbg}).Verify(realSNP(t), Expect{})
		if err != nil {
			t.Fatal(err)
		}
		min := *res.TCB.SNP
		min.SNP++
		_, err = newVerifier(t, Options{Now: at(snpNow), Policy: Policy{AllowDebug: true, MinSNPTCB: min}}).Verify(realSNP(t), Expect{})
		wantReason(t, err, ReasonTCBOutOfDate)
	})
	t.Run("chain to another root", func(t *testing.T) {
		// Genoa's real ASK/ARK as the only Milan roots: the real Milan VCEK does not chain to them.
		v := newVerifier(t, Options{Now: at(snpNow), SNPRoots: map[string][]byte{"Milan": readTestdata(t, "snp/ask_ark_genoa.pem")}})
		_, err := v.Verify(realSNP(t), Expect{})
		wantReason(t, err, ReasonRoot)
	})
	t.Run("no VCEK", func(t *testing.T) {
		ev := realSNP(t)
		ev.VCEK = nil
		_, err := newVerifier(t, Options{Now: at(snpNow)}).Verify(ev, Expect{})
		wantReason(t, err, ReasonRoot)
		// Supplied ahead of time as collateral instead, found by chip ID.
		if _, err := newVerifier(t, Options{Now: at(snpNow), VCEKs: [][]byte{readTestdata(t, "snp/vcek.der")}, Policy: dbg}).Verify(ev, Expect{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("kind not in policy", func(t *testing.T) {
		_, err := newVerifier(t, Options{Now: at(snpNow), Policy: Policy{Kinds: []Kind{TDX}}}).Verify(realSNP(t), Expect{})
		wantReason(t, err, ReasonPolicy)
	})
	t.Run("truncated", func(t *testing.T) {
		ev := realSNP(t)
		ev.Data = ev.Data[:100]
		_, err := newVerifier(t, Options{Now: at(snpNow)}).Verify(ev, Expect{})
		wantReason(t, err, ReasonMalformed)
	})
}

// The two facts about go-tdx-guest v0.3.1's real Sapphire Rapids quote and
// its sample collateral (docs/confidential.md explains them).
func TestRealTDXCollateralFacts(t *testing.T) {
	t.Run("today the collateral has expired", func(t *testing.T) {
		v := newVerifier(t, Options{Now: at(tdxToday), TDX: realTDXCollateral(t)})
		_, err := v.Verify(realTDX(t), Expect{})
		wantReason(t, err, ReasonCollateralExpired)
		t.Log(err)
	})
	t.Run("at its own date no TCB level matches", func(t *testing.T) {
		v := newVerifier(t, Options{Now: at(tdxCollDate), TDX: realTDXCollateral(t)})
		_, err := v.Verify(realTDX(t), Expect{})
		wantReason(t, err, ReasonTCBOutOfDate)
		t.Log(err)
		// Why: the quote's platform is below every level the TCB info lists.
		res, err := newVerifier(t, Options{Now: at(tdxCollDate), AllowMissingCollateral: true}).Verify(realTDX(t), Expect{})
		if err != nil {
			t.Fatal(err)
		}
		info := v.TCBInfo(TDX)
		lowest := info.TcbLevels[len(info.TcbLevels)-1].Tcb
		t.Logf("platform: PCK CPUSVN %v PCESVN %d TEE_TCB_SVN %v FMSPC %s", []byte(res.TCB.CPUSVN), res.TCB.PCESVN, []byte(res.TCB.TeeTCBSVN), res.TCB.FMSPC)
		t.Logf("lowest published level: SGX %v PCESVN %d TDX %v", svns(lowest.SgxTcbcomponents), lowest.Pcesvn, svns(lowest.TdxTcbcomponents))
		if _, err := intelTCBLevel(info, res.TCB, true); err == nil {
			t.Fatal("our own TCB evaluation found a level the library did not")
		}
	})
	t.Run("signature and chain verify without collateral", func(t *testing.T) {
		res, err := newVerifier(t, Options{Now: at(tdxToday), AllowMissingCollateral: true}).Verify(realTDX(t), Expect{})
		if err != nil {
			t.Fatal(err)
		}
		if res.TCBStatus != "unevaluated" || len(res.RTMRs) != 4 {
			t.Fatalf("result %+v", res)
		}
		_, err = newVerifier(t, Options{Now: at(tdxToday)}).Verify(realTDX(t), Expect{})
		wantReason(t, err, ReasonCollateralExpired) // no collateral, not allowed
	})
	t.Run("in 2053 the PCK chain has expired", func(t *testing.T) {
		_, err := newVerifier(t, Options{Now: at(farFuture), AllowMissingCollateral: true}).Verify(realTDX(t), Expect{})
		wantReason(t, err, ReasonCollateralExpired)
	})
}

// The real TDX PCK CRL is loaded (and its signature checked) at the
// collateral's date, so a later CRL can revoke recorded PCK serials; today
// its issuer chain has expired and only Verify's own check applies.
func TestRealTDXPCKCRL(t *testing.T) {
	if v := newVerifier(t, Options{Now: at(tdxCollDate), TDX: realTDXCollateral(t)}); v.tdxCRL == nil {
		t.Fatal("the PCK CRL was not loaded at its own date")
	}
	res, err := newVerifier(t, Options{Now: at(tdxCollDate), AllowMissingCollateral: true}).Verify(realTDX(t), Expect{})
	if err != nil {
		t.Fatal(err)
	}
	if res.TCB.PCKSerial == "" {
		t.Fatal("no PCK serial recorded")
	}
}
