package attest_test

import (
	"testing"

	"github.com/bulwark-sec/bulwark/internal/attest"
)

// sgxFields is the SGX DCAP quote v3 (Intel SGX ECDSA Quote Library
// reference, "Quote Format"): header, the ISV enclave report the
// attestation key signs, then the signature data with the QE report the
// PCK key signs.
var sgxFields = []attest.Field{
	{"header.version", 0, 2}, {"header.att_key_type", 2, 2}, {"header.tee_type", 4, 4},
	{"header.qe_svn_pce_svn", 8, 4}, {"header.qe_vendor_id", 12, 16}, {"header.user_data", 28, 20},
	{"report.cpusvn", 48, 16}, {"report.miscselect", 64, 4}, {"report.reserved1", 68, 28},
	{"report.attributes", 96, 16}, {"report.mrenclave", 112, 32}, {"report.reserved2", 144, 32},
	{"report.mrsigner", 176, 32}, {"report.reserved3", 208, 96}, {"report.isvprodid", 304, 2},
	{"report.isvsvn", 306, 2}, {"report.reserved4", 308, 60}, {"report.report_data", 368, 64},
	{"signature_data_len", 432, 4}, {"isv_signature", 436, 64}, {"attestation_key", 500, 64},
	{"qe_report", 564, 384}, {"qe_report_signature", 948, 64}, {"qe_auth_data_len", 1012, 2},
}

func TestMutatedSyntheticSGXRefused(t *testing.T) {
	f := newSGX(t)
	v := f.verifier(t, attest.Options{})
	ev := f.quote(t, f.enc)
	if _, err := v.Verify(ev, attest.Expect{}); err != nil {
		t.Fatal(err)
	}
	seen := attest.FlipEach(t, ev.Data, sgxFields, 1014, func(b []byte) error {
		_, err := v.Verify(&attest.Evidence{Kind: attest.SGX, Data: b}, attest.Expect{})
		return err
	})
	t.Logf("refusals by reason: %v", seen)
}
