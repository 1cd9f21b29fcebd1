package attest_test

import (
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/attest/attesttest"
)

// tdx5Fields is the TDX quote v5 (Intel TDX DCAP quote format v5): the
// header, the body descriptor and the TD report (1.0, or 1.5 with
// TEE_TCB_SVN2 and MRSERVICETD) the attestation key signs, then the
// signature data: quote signature, attestation key, the certification
// data header and the QE report the PCK key signs, with its signature.
func tdx5Fields(body uint16) ([]attest.Field, int) {
	f := []attest.Field{
		{"header.version", 0, 2}, {"header.att_key_type", 2, 2}, {"header.tee_type", 4, 4},
		{"header.qe_svn_pce_svn", 8, 4}, {"header.qe_vendor_id", 12, 16}, {"header.user_data", 28, 20},
		{"descriptor.body_type", 48, 2}, {"descriptor.body_size", 50, 4},
		{"body.tee_tcb_svn", 54, 16}, {"body.mrseam", 70, 48}, {"body.mrsignerseam", 118, 48},
		{"body.seam_attributes", 166, 8}, {"body.td_attributes", 174, 8}, {"body.xfam", 182, 8},
		{"body.mrtd", 190, 48}, {"body.mrconfigid", 238, 48}, {"body.mrowner", 286, 48},
		{"body.mrownerconfig", 334, 48}, {"body.rtmr0", 382, 48}, {"body.rtmr1", 430, 48},
		{"body.rtmr2", 478, 48}, {"body.rtmr3", 526, 48}, {"body.report_data", 574, 64},
	}
	e := 638
	if body == attesttest.TDReport15 {
		f = append(f, attest.Field{Name: "body.tee_tcb_svn2", Off: 638, Len: 16}, attest.Field{Name: "body.mrservicetd", Off: 654, Len: 48})
		e = 702
	}
	f = append(f, []attest.Field{
		{"signature_data_len", e, 4}, {"quote_signature", e + 4, 64}, {"attestation_key", e + 68, 64},
		{"cert_data_type_size", e + 132, 6}, {"qe_report", e + 138, 384}, {"qe_report_signature", e + 522, 64},
		{"qe_auth_data_len", e + 586, 2},
	}...)
	return f, e + 588
}

// Every bit of the signed parts of a v5 quote of each body type flipped is
// refused with a typed reason, by a verifier whose collateral is warm; the
// unmutated quote still verifies afterwards, and not once the collateral's
// dates have passed.
func TestMutatedSyntheticTDXv5Refused(t *testing.T) {
	if testing.Short() {
		t.Skip("flips 20,000 bits")
	}
	f := newTDX5(t)
	now := synthNow
	v := f.verifier(t, "UpToDate", attest.Options{Now: func() time.Time { return now }})
	for _, body := range []uint16{attesttest.TDReport10, attesttest.TDReport15} {
		q := f.quote(t, f.td, body)
		ev := &attest.Evidence{Kind: attest.TDX, Data: q}
		if _, err := v.Verify(ev, attest.Expect{}); err != nil {
			t.Fatal(err)
		}
		fields, end := tdx5Fields(body)
		seen := attest.FlipEach(t, q, fields, end, func(b []byte) error {
			_, err := v.Verify(&attest.Evidence{Kind: attest.TDX, Data: b}, attest.Expect{})
			return err
		})
		t.Logf("body type %d: refusals by reason: %v", body, seen)
		if _, err := v.Verify(ev, attest.Expect{}); err != nil {
			t.Fatal(err)
		}
	}
	now = synthNow.Add(31 * 24 * time.Hour)
	_, err := v.Verify(&attest.Evidence{Kind: attest.TDX, Data: f.quote(t, f.td, attesttest.TDReport10)}, attest.Expect{})
	reasonIs(t, err, attest.ReasonCollateralExpired)
}
