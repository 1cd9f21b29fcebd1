package containerdtest

import (
	"archive/tar"
	"errors"
	"io"
	"testing"
)

func TestImageOf(t *testing.T) {
	files := map[string][]byte{"bin/probe": []byte("probe"), "bin/tool": []byte("tool"), "run/secrets/": nil, "variant": []byte("a")}
	img := Image(t, files, "/bin/probe", "serve")
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || len(cf.Config.Entrypoint) != 2 || cf.Config.Entrypoint[0] != "/bin/probe" {
		t.Fatalf("config: os %q entrypoint %q", cf.OS, cf.Config.Entrypoint)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Name)
		if want := int64(0o755); h.Typeflag == tar.TypeReg && h.Mode != want {
			t.Errorf("%s: mode %o, want %o", h.Name, h.Mode, want)
		}
		if want := int64(0o1777); h.Typeflag == tar.TypeDir && h.Mode != want {
			t.Errorf("%s: mode %o, want %o", h.Name, h.Mode, want)
		}
	}
	// Each directory once, before what is in it.
	want := []string{"bin/", "bin/probe", "bin/tool", "run/", "run/secrets/", "variant"}
	if len(got) != len(want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("entries %q, want %q", got, want)
		}
	}

	same, other := Image(t, files, "/bin/probe", "serve"), Image(t, map[string][]byte{"bin/probe": []byte("probe"), "bin/tool": []byte("tool"), "run/secrets/": nil, "variant": []byte("b")}, "/bin/probe", "serve")
	d1, _ := img.Digest()
	d2, _ := same.Digest()
	d3, _ := other.Digest()
	if d1 != d2 || d1 == d3 {
		t.Fatalf("digests: same files %s and %s, other content %s", d1, d2, d3)
	}
}
