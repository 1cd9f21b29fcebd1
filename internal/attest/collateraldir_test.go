package attest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoadOptions(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "snp", "vcek"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "snp", "Milan.pem"), readTestdata(t, "snp/ask_ark_milan.pem"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "snp", "vcek", "chip.der"), readTestdata(t, "snp/vcek.der"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte("allowDebug: true\n"), 0o644))
	must(realTDXCollateral(t).WriteDir(filepath.Join(dir, "tdx")))
	d1, err := DirDigest(dir)
	must(err)

	o, err := LoadOptions(dir)
	must(err)
	if len(o.VCEKs) != 1 || o.SNPRoots["Milan"] == nil || o.TDX == nil || o.SGX != nil || !o.Policy.AllowDebug {
		t.Fatalf("options %+v", o)
	}
	o.Now = at(snpNow)
	ev := realSNP(t)
	ev.VCEK = nil // found in the directory by chip ID
	if _, err := newVerifier(t, o).Verify(ev, Expect{}); err != nil {
		t.Fatal(err)
	}

	must(os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte("allowDebug: false\n"), 0o644))
	if d2, _ := DirDigest(dir); d2 == d1 {
		t.Fatal("the digest did not change with the policy")
	}
	for name, broken := range map[string]func(string){
		"unknown policy key": func(d string) { os.WriteFile(filepath.Join(d, "policy.yaml"), []byte("allowDebugg: true\n"), 0o644) },
		"policy accepting Revoked": func(d string) {
			os.WriteFile(filepath.Join(d, "policy.yaml"), []byte("tcbStatuses: [Revoked]\n"), 0o644)
		},
		"TDX collateral missing a file": func(d string) { os.Remove(filepath.Join(d, "tdx", "qeidentity.json")) },
		"malformed TDX TCB info":        func(d string) { os.WriteFile(filepath.Join(d, "tdx", "tcbinfo.json"), []byte("{"), 0o644) },
		"unreadable policy": func(d string) {
			os.Remove(filepath.Join(d, "policy.yaml"))
			os.Mkdir(filepath.Join(d, "policy.yaml"), 0o755)
		},
	} {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			must(realTDXCollateral(t).WriteDir(filepath.Join(d, "tdx")))
			broken(d)
			o, err := LoadOptions(d)
			if err == nil {
				_, err = New(o)
			}
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := LoadOptions(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing directory was accepted")
	}
}
