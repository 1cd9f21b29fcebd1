package secretstore

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParsePolicy: a policy from the API either parses into one that
// validates, or fails with ErrInvalid; never a panic.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(`{"spiffeIDs":["spiffe://prod.example/ns/payments/**"],"certifiedUnder":"default","noDrift":true,"regions":["eu-west-1"]}`))
	f.Add([]byte(`{"spiffeIDs":["spiffe://x/[a-"]}`))
	f.Add([]byte(`{"spiffeIDs":[]} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error without ErrInvalid: %v", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed but invalid: %v", err)
		}
		for _, g := range p.SPIFFEIDs {
			MatchID(g, "spiffe://prod.example/ns/payments/sa/api")
		}
	})
}

// FuzzValidName: a name that passes can never climb out of a directory
// (the agent writes secrets to files by name).
func FuzzValidName(f *testing.F) {
	for _, s := range []string{"payments/db", "../etc/passwd", "a/./b", "a//b", "/abs", "a/..", "ok.txt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidName(name) != nil {
			return
		}
		for _, seg := range strings.Split(name, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "\\\x00") {
				t.Fatalf("valid name %q has segment %q", name, seg)
			}
		}
	})
}
