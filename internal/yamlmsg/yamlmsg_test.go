package yamlmsg

import (
	"bytes"
	"testing"

	"gopkg.in/yaml.v3"
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
