package attest_test

import (
	"fmt"
	"os"
	"time"

	"github.com/bulwark-sec/bulwark/internal/attest"
)

// Verify a real AMD Milan SEV-SNP report offline against AMD's roots (as
// embedded in go-sev-guest), at a pinned time.
func ExampleVerifier_Verify() {
	report, _ := os.ReadFile("testdata/snp/report.bin")
	vcek, _ := os.ReadFile("testdata/snp/vcek.der")
	ev := &attest.Evidence{Kind: attest.SNP, Data: report, VCEK: vcek}
	at := func() time.Time { return time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC) }

	v, _ := attest.New(attest.Options{Now: at})
	_, err := v.Verify(ev, attest.Expect{})
	fmt.Println(attest.ReasonOf(err)) // the guest was launched debuggable

	v, _ = attest.New(attest.Options{Now: at, Policy: attest.Policy{AllowDebug: true}})
	res, err := v.Verify(ev, attest.Expect{})
	fmt.Println(err == nil, res.TCB.SNP)
	// Output:
	// debug
	// true bl=2 tee=0 snp=5 ucode=68
}
