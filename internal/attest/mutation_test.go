package attest

// Every single-bit change to the signed part of real evidence is refused:
// a table over the report's and quote's fields (offsets from AMD's SEV-SNP
// ABI, table 22, and Intel's TDX DCAP quote v4 layout), each field's every
// bit flipped in turn. The table must cover the signed bytes without a gap,
// so that no field is left out by omission.

import (
	"testing"
)

type field struct {
	Name     string
	Off, Len int
}

// flipEach flips every bit of every field of data and requires verify to
// refuse the result with a typed reason. It returns the reasons seen.
func flipEach(t *testing.T, data []byte, fields []field, signedEnd int, verify func([]byte) error) map[Reason]int {
	t.Helper()
	covered := 0
	for _, f := range fields {
		if f.Off != covered {
			t.Fatalf("field table has a gap or overlap at %#x (%s starts at %#x)", covered, f.Name, f.Off)
		}
		covered = f.Off + f.Len
	}
	if covered < signedEnd {
		t.Fatalf("field table covers %#x bytes of the %#x signed", covered, signedEnd)
	}
	seen := map[Reason]int{}
	for _, f := range fields {
		t.Run(f.Name, func(t *testing.T) {
			for i := f.Off; i < f.Off+f.Len; i++ {
				for bit := range 8 {
					m := append([]byte(nil), data...)
					m[i] ^= 1 << bit
					err := verify(m)
					r := ReasonOf(err)
					if r == "" {
						t.Fatalf("byte %#x bit %d: accepted or untyped refusal: %v", i, bit, err)
					}
					seen[r]++
				}
			}
		})
	}
	return seen
}

// snpFields is the SEV-SNP attestation report (v2/v3) up to the end of
// the signature's R and S (each 72 bytes, little endian).
var snpFields = []field{
	{"version", 0x00, 4}, {"guest_svn", 0x04, 4}, {"policy", 0x08, 8}, {"family_id", 0x10, 16},
	{"image_id", 0x20, 16}, {"vmpl", 0x30, 4}, {"signature_algo", 0x34, 4}, {"current_tcb", 0x38, 8},
	{"platform_info", 0x40, 8}, {"signer_info", 0x48, 4}, {"reserved_4c", 0x4c, 4},
	{"report_data", 0x50, 64}, {"measurement", 0x90, 48}, {"host_data", 0xc0, 32},
	{"id_key_digest", 0xe0, 48}, {"author_key_digest", 0x110, 48}, {"report_id", 0x140, 32},
	{"report_id_ma", 0x160, 32}, {"reported_tcb", 0x180, 8}, {"cpuid_reserved", 0x188, 24},
	{"chip_id", 0x1a0, 64}, {"committed_tcb", 0x1e0, 8}, {"current_version", 0x1e8, 4},
	{"committed_version", 0x1ec, 4}, {"launch_tcb", 0x1f0, 8}, {"reserved_1f8", 0x1f8, 0x2a0 - 0x1f8},
	{"signature_r", 0x2a0, 72}, {"signature_s", 0x2e8, 72},
}

func TestMutatedRealSNPRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("flips 9,000 bits")
	}
	v := newVerifier(t, Options{Now: at(snpNow), Policy: dbg})
	ev := realSNP(t)
	if _, err := v.Verify(ev, Expect{}); err != nil {
		t.Fatal(err) // the unmutated report verifies (and warms the VCEK)
	}
	seen := flipEach(t, ev.Data, snpFields, 0x2a0+144, func(b []byte) error {
		_, err := v.Verify(&Evidence{Kind: SNP, Data: b, VCEK: ev.VCEK}, Expect{})
		return err
	})
	t.Logf("refusals by reason: %v", seen)
}

// tdxFields is the TDX quote v4: the 48-byte header and the 584-byte TD
// quote body the attestation key signs, then the signature data: the
// quote signature, the attestation key, and the QE report the PCK key
// signs (whose REPORTDATA binds the attestation key) with its signature.
var tdxFields = []field{
	{"header.version", 0, 2}, {"header.att_key_type", 2, 2}, {"header.tee_type", 4, 4},
	{"header.qe_svn_pce_svn", 8, 4}, {"header.qe_vendor_id", 12, 16}, {"header.user_data", 28, 20},
	{"body.tee_tcb_svn", 48, 16}, {"body.mrseam", 64, 48}, {"body.mrsignerseam", 112, 48},
	{"body.seam_attributes", 160, 8}, {"body.td_attributes", 168, 8}, {"body.xfam", 176, 8},
	{"body.mrtd", 184, 48}, {"body.mrconfigid", 232, 48}, {"body.mrowner", 280, 48},
	{"body.mrownerconfig", 328, 48}, {"body.rtmr0", 376, 48}, {"body.rtmr1", 424, 48},
	{"body.rtmr2", 472, 48}, {"body.rtmr3", 520, 48}, {"body.report_data", 568, 64},
	{"signed_data_size", 632, 4}, {"quote_signature", 636, 64}, {"attestation_key", 700, 64},
	{"cert_data_type_size", 764, 6}, {"qe_report", 770, 384}, {"qe_report_signature", 1154, 64},
}

func TestMutatedRealTDXRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("flips 9,000 bits")
	}
	// At the collateral's own date the real quote is refused for its TCB
	// level (TestRealTDXCollateralFacts), so the signature and chain path
	// runs without collateral: what a flipped bit must break is the
	// signature, the chain or the parse.
	v := newVerifier(t, Options{Now: at(tdxToday), AllowMissingCollateral: true})
	ev := realTDX(t)
	if _, err := v.Verify(ev, Expect{}); err != nil {
		t.Fatal(err)
	}
	seen := flipEach(t, ev.Data, tdxFields, 1154+64, func(b []byte) error {
		_, err := v.Verify(&Evidence{Kind: TDX, Data: b}, Expect{})
		return err
	})
	t.Logf("refusals by reason: %v", seen)
}
