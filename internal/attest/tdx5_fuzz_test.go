package attest_test

// Fuzz target for the TDX v5 quote parser written here, and through it
// Verify. Seeds are synthetic v5 quotes of both body types (no real v5
// quote is published), their truncations and a bare header; a target fails
// on a panic, on parsed parts that do not tile the input, on an untyped
// refusal, or on an accepted quote whose signed part is no seed's.

import (
	"bytes"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/attest/attesttest"
)

func FuzzTDXQuoteV5(f *testing.F) {
	fx := newTDX5(f)
	var seeds [][]byte
	for _, body := range []uint16{attesttest.TDReport10, attesttest.TDReport15} {
		q, err := fx.p.TDXQuoteV5(fx.tmpl, fx.td, body, fx.ext)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, q)
		f.Add(q)
		f.Add(q[:len(q)/2])
		f.Add(q[:54])
	}
	f.Add([]byte{5, 0, 2, 0, 0x81, 0, 0, 0})
	v := fx.verifier(f, "UpToDate", attest.Options{})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := attest.ParseTDXQuoteV5(b)
		if err == nil {
			n := len(q.Signed) + 4 + len(q.QuoteSig) + len(q.AttestKey) + 6 + len(q.QEReport.Raw) + len(q.QEReportSig) +
				2 + len(q.QEAuthData) + 6 + len(q.PCKChain)
			if n != len(b) || len(q.Signed) != 54+len(q.Body.Raw) {
				t.Fatalf("parsed parts cover %d bytes of %d", n, len(b))
			}
			if (q.BodyType == attesttest.TDReport15) != (len(q.Body.MRSERVICETD) == 48) {
				t.Fatalf("body type %d with MRSERVICETD of %d bytes", q.BodyType, len(q.Body.MRSERVICETD))
			}
		}
		res, err := v.Verify(&attest.Evidence{Kind: attest.TDX, Data: b}, attest.Expect{})
		if err != nil {
			if attest.ReasonOf(err) == "" {
				t.Fatalf("untyped refusal: %v", err)
			}
			return
		}
		for _, s := range seeds {
			if len(b) > len(q.Signed) && bytes.Equal(b[:len(q.Signed)], s[:len(q.Signed)]) {
				return
			}
		}
		t.Fatalf("accepted %d bytes whose signed part is no seed's: %+v", len(b), res)
	})
}

// go-tdx-guest v0.3.1's v4 parser panics on a signed data size below 134
// (found by TestMutatedSyntheticTDXv5Refused: a v5 quote with its version
// flipped to 4); Verify refuses such a quote as malformed instead.
func TestTDXv4ShortSignedDataRefused(t *testing.T) {
	fx := newTDX5(t)
	v := fx.verifier(t, "", attest.Options{})
	for _, size := range []uint32{0, 63, 127, 133} {
		q := make([]byte, 48+584+4+int(size))
		copy(q, []byte{4, 0, 2, 0, 0x81})
		q[632], q[633] = byte(size), byte(size>>8)
		_, err := v.Verify(&attest.Evidence{Kind: attest.TDX, Data: q}, attest.Expect{})
		reasonIs(t, err, attest.ReasonMalformed)
	}
}
