package fuzz

import (
	"errors"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/fuzz/fuzztest"
)

// FuzzParse: any document is read or refused with ErrDocument, never a
// panic, and a document that is read generates valid requests for every
// operation without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte(fuzztest.Spec))
	f.Add([]byte(swagger2))
	f.Add([]byte(`{"openapi":"3.1.0","info":{"title":"x","version":"1"},"paths":{"/a/{b}":{"get":{"parameters":[{"name":"b","in":"path","required":true,"schema":{"type":["integer","null"]}}],"responses":{"200":{"description":"ok"}}}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrDocument) {
				t.Fatalf("error not ErrDocument: %v", err)
			}
			return
		}
		g := &generator{rng: newRand(1), pool: map[string]string{}}
		for _, op := range spec.ops {
			r := g.valid(op)
			for _, m := range mutations(op, g) {
				c := r.clone()
				m.apply(&c)
			}
		}
	})
}
