package yamlmsg

import (
	"bytes"
	"testing"

	"gopkg.in/yaml.v3"
	k8syaml "sigs.k8s.io/yaml"
)

type doc struct {
	Name  string `yaml:"name"`
	Count int    `yaml:"count"`
}

func decode(t *testing.T, src string) error {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader([]byte(src)))
	dec.KnownFields(true)
	var d doc
	err := dec.Decode(&d)
	if err == nil {
		t.Fatalf("%q decoded", src)
	}
	return err
}

func TestOf(t *testing.T) {
	for src, want := range map[string]string{
		"name: x\nnmae: y\n":     "line 2: field nmae not found",
		"nmae: y\ncount: many\n": "line 1: field nmae not found; line 2: cannot unmarshal !!str `many` into int",
		"name: [\n":              "line 1: did not find expected node content",
	} {
		if got := Of(decode(t, src)); got != want {
			t.Errorf("%q: got %q, want %q", src, got, want)
		}
	}
}

// sigs.k8s.io/yaml (the instance and identity TEE policies) said "error
// unmarshaling JSON: while decoding JSON: json: unknown field \"regionz\"".
func TestOfViaJSON(t *testing.T) {
	var d doc
	for src, want := range map[string]string{
		"regionz: []\n": `unknown field "regionz"`,
		"name: [\n":     "line 1: did not find expected node content",
	} {
		err := k8syaml.UnmarshalStrict([]byte(src), &d)
		if err == nil {
			t.Fatalf("%q decoded", src)
		}
		if got := Of(err); got != want {
			t.Errorf("%q: got %q (from %q), want %q", src, got, err, want)
		}
	}
}
