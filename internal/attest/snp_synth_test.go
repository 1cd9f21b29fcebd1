package attest_test

// SEV-SNP on synthetic reports (go-sev-guest's test-only AMD chain): the
// checks the real Milan report cannot show because it is fixed (a guest
// without debug, a chosen nonce, host data and ID key).

import (
	"crypto/sha512"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/attest/attesttest"
)

var snpTCB = attest.SNPTCB{Bootloader: 3, TEE: 0, SNP: 8, Microcode: 115}

func newSNP(t testing.TB) (*attesttest.SNPPlatform, attesttest.Guest) {
	t.Helper()
	p, err := attesttest.NewSNPPlatform(synthNow, snpTCB)
	if err != nil {
		t.Fatal(err)
	}
	g := attesttest.Guest{Measurement: sha512.Sum384([]byte("kernel+initrd+cmdline")), SVN: 4}
	g.HostData[0], g.ReportData[0] = 0x11, 0x42
	return p, g
}

func snpVerifier(t testing.TB, p *attesttest.SNPPlatform, pol attest.Policy) *attest.Verifier {
	t.Helper()
	v, err := attest.New(attest.Options{Now: func() time.Time { return synthNow }, SNPRoots: p.Roots(), Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func snpEvidence(t testing.TB, p *attesttest.SNPPlatform, g attesttest.Guest) *attest.Evidence {
	t.Helper()
	ev, err := p.Evidence(g)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestSyntheticSNP(t *testing.T) {
	p, g := newSNP(t)
	ref := attest.Reference{Kind: attest.SNP, Measurement: g.Measurement[:], HostData: g.HostData[:]}
	res, err := snpVerifier(t, p, attest.Policy{}).Verify(snpEvidence(t, p, g), attest.Expect{ReportData: []byte{0x42}, References: []attest.Reference{ref}})
	if err != nil {
		t.Fatal(err)
	}
	if *res.TCB.SNP != snpTCB || res.Debug || res.SVN != 4 {
		t.Fatalf("result %+v", res)
	}
	// Without SMT the SMT-denying policy accepts it; a migration agent the
	// policy allows is accepted.
	noSMT := g
	noSMT.NoSMT = true
	if _, err := snpVerifier(t, p, attest.Policy{DenySMT: true}).Verify(snpEvidence(t, p, noSMT), attest.Expect{}); err != nil {
		t.Fatal(err)
	}
	ma := g
	ma.MigrationAgent = true
	if _, err := snpVerifier(t, p, attest.Policy{AllowMigrationAgent: true}).Verify(snpEvidence(t, p, ma), attest.Expect{}); err != nil {
		t.Fatal(err)
	}
	other, _ := newSNP(t)
	for _, tc := range []struct {
		name string
		run  func() error
		want attest.Reason
	}{
		{"debug guest", func() error {
			d := g
			d.Debug = true
			_, err := snpVerifier(t, p, attest.Policy{}).Verify(snpEvidence(t, p, d), attest.Expect{})
			return err
		}, attest.ReasonDebug},
		{"real AMD roots", func() error {
			v, err := attest.New(attest.Options{Now: func() time.Time { return synthNow }})
			if err != nil {
				return err
			}
			_, err = v.Verify(snpEvidence(t, p, g), attest.Expect{})
			return err
		}, attest.ReasonRoot},
		{"another chip's VCEK", func() error {
			ev := snpEvidence(t, p, g)
			ev.VCEK = other.VCEK()
			_, err := snpVerifier(t, other, attest.Policy{}).Verify(ev, attest.Expect{})
			return err
		}, attest.ReasonSignature},
		{"VCEK of another chip with the same key", func() error {
			q, err := attesttest.NewSNPPlatform(synthNow, snpTCB)
			if err != nil {
				return err
			}
			q.Signer.Keys.Vcek = p.Signer.Keys.Vcek
			ev := snpEvidence(t, q, g)
			ev.VCEK = p.VCEK()
			_, err = snpVerifier(t, p, attest.Policy{}).Verify(ev, attest.Expect{})
			return err
		}, attest.ReasonRoot},
		{"TCB below the minimum", func() error {
			min := snpTCB
			min.Microcode++
			_, err := snpVerifier(t, p, attest.Policy{MinSNPTCB: min}).Verify(snpEvidence(t, p, g), attest.Expect{})
			return err
		}, attest.ReasonTCBOutOfDate},
		{"nonce mismatch", func() error {
			_, err := snpVerifier(t, p, attest.Policy{}).Verify(snpEvidence(t, p, g), attest.Expect{ReportData: []byte{0x43}})
			return err
		}, attest.ReasonNonce},
		{"host data mismatch", func() error {
			r := ref
			r.HostData = make([]byte, 32)
			_, err := snpVerifier(t, p, attest.Policy{}).Verify(snpEvidence(t, p, g), attest.Expect{References: []attest.Reference{r}})
			return err
		}, attest.ReasonMeasurement},
		{"migration agent allowed", func() error {
			m := g
			m.MigrationAgent = true
			_, err := snpVerifier(t, p, attest.Policy{}).Verify(snpEvidence(t, p, m), attest.Expect{})
			return err
		}, attest.ReasonPolicy},
		{"SMT allowed, policy denies it", func() error {
			_, err := snpVerifier(t, p, attest.Policy{DenySMT: true}).Verify(snpEvidence(t, p, g), attest.Expect{})
			return err
		}, attest.ReasonPolicy},
		{"guest SVN below minimum", func() error {
			_, err := snpVerifier(t, p, attest.Policy{MinSVN: 5}).Verify(snpEvidence(t, p, g), attest.Expect{})
			return err
		}, attest.ReasonPolicy},
		{"ID key not an accepted signer", func() error {
			_, err := snpVerifier(t, p, attest.Policy{Signers: []attest.Hex{make([]byte, 48)[:47]}}).Verify(snpEvidence(t, p, g), attest.Expect{})
			return err
		}, attest.ReasonMeasurement},
	} {
		t.Run(tc.name, func(t *testing.T) { reasonIs(t, tc.run(), tc.want) })
	}
}
