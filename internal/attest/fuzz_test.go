package attest

// Fuzz targets for every parser of untrusted evidence: the SGX quote
// parser written here, and the SEV-SNP and TDX paths through
// go-sev-guest's and go-tdx-guest's parsers into Verify. Seeds are the real
// evidence (and its truncations); a target fails on a panic, on an
// acceptance of bytes that are not the seed, or on an untyped refusal.

import (
	"bytes"
	"testing"
)

func FuzzParseSGXQuote(f *testing.F) {
	f.Add([]byte{3, 0, 2, 0})
	f.Add(make([]byte, sgxSigOffset+4))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseSGXQuote(b)
		if err != nil {
			return
		}
		// Every part lies inside the input and the parts tile it.
		n := len(q.Header) + len(q.Report.Raw) + 4 + len(q.ISVSig) + len(q.AttestKey) + len(q.QEReport.Raw) +
			len(q.QEReportSig) + 2 + len(q.QEAuthData) + 6 + len(q.PCKChain)
		if n != len(b) {
			t.Fatalf("parsed parts cover %d bytes of %d", n, len(b))
		}
	})
}

func fuzzVerify(f *testing.F, k Kind, seed []byte, v *Verifier, vcek []byte) {
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := v.Verify(&Evidence{Kind: k, Data: b, VCEK: vcek}, Expect{})
		if err == nil {
			if !bytes.HasPrefix(b, seed[:632]) {
				t.Fatalf("accepted %d bytes that are not the real evidence: %+v", len(b), res)
			}
			return
		}
		if ReasonOf(err) == "" {
			t.Fatalf("untyped refusal: %v", err)
		}
	})
}

func FuzzVerifySNP(f *testing.F) {
	v := newVerifier(f, Options{Now: at(snpNow), Policy: dbg})
	fuzzVerify(f, SNP, readTestdata(f, "snp/report.bin"), v, readTestdata(f, "snp/vcek.der"))
}

func FuzzVerifyTDX(f *testing.F) {
	v := newVerifier(f, Options{Now: at(tdxToday), AllowMissingCollateral: true})
	fuzzVerify(f, TDX, readTestdata(f, "tdx/quote.dat"), v, nil)
}

func FuzzParseEvidence(f *testing.F) {
	f.Add([]byte(`{"kind":"sev-snp","data":"AAAA","vcek":"AA=="}`))
	f.Add([]byte(`{"kind":"tdx","data":""}`))
	f.Add([]byte(`{"kind":"nope","data":"AA=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseEvidence(b)
		if err != nil {
			return
		}
		if len(ev.Data) == 0 {
			t.Fatal("accepted an envelope without data")
		}
		if _, err := ParseKind(string(ev.Kind)); err != nil {
			t.Fatalf("accepted kind %q", ev.Kind)
		}
	})
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("kinds: [sev-snp, tdx]\nminSnpTcb: {bootloader: 3, tee: 0, snp: 8, microcode: 115}\nminSvn: 2\n"))
	f.Add([]byte(`{"tcbStatuses":["SWHardeningNeeded"],"signers":["00ff"]}`))
	f.Add([]byte("tcbStatuses: [Revoked]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			return
		}
		for _, s := range p.TCBStatuses {
			if s == "Revoked" {
				t.Fatal("a policy accepting Revoked parsed")
			}
		}
	})
}

// Reference predicates come from registries: signed, but by whoever
// holds a trusted key, and parsed before anything else looks at them.
func FuzzParseReferencePredicate(f *testing.F) {
	f.Add([]byte(`{"references":[{"kind":"sev-snp","measurement":"00ff"}],"policy":{"minSvn":2}}`))
	f.Add([]byte(`{"references":[{"kind":"tdx","measurement":"00","rtmrs":["","aa"]}]}`))
	f.Add([]byte(`{"references":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseReferencePredicate(b)
		if err != nil {
			return
		}
		if len(p.References) == 0 || len(p.Kinds()) == 0 {
			t.Fatal("accepted a predicate with no references")
		}
		for _, r := range p.References {
			if len(r.Measurement) == 0 && len(r.Signer) == 0 {
				t.Fatalf("accepted a reference that checks nothing: %+v", r)
			}
		}
	})
}
