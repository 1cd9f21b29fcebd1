package secrets

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"reflect"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
)

// TestStreamedRealLayer: the Debian base layer with a GitHub token
// appended to every regular file, so that every file the scanner reads is
// one finding. Streamed, the same files are read as from the layer: 5,000
// real paths through the skips, the size limit and the binary sniff.
func TestStreamedRealLayer(t *testing.T) {
	if testing.Short() {
		t.Skip("rewrites a 121 MB layer")
	}
	base := openLayer(t, "bookworm-minbase.tar")
	tok := newFakes().github("ghp_")
	var buf bytes.Buffer
	tr := tar.NewReader(io.NewSectionReader(base.Data, 0, base.Size))
	tw := tar.NewWriter(&buf)
	regular := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			regular++
			body = append(body, "\ntoken="+tok+"\n"...)
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	b := buf.Bytes()
	fsys, err := layerfs.Build(context.Background(), []layerfs.Layer{{DiffID: diffID(0), Data: bytes.NewReader(b), Size: int64(len(b))}})
	if err != nil {
		t.Fatal(err)
	}
	want, err := Scan(context.Background(), fsys, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Scan(context.Background(), streamed(t, Options{}, [][]byte{b}), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d regular files, %d scanned (one finding each)", regular, len(want))
	if len(want) < 1000 {
		t.Fatalf("only %d findings from reading the layer", len(want))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("streamed: %d findings, read from the layer: %d", len(got), len(want))
		in := map[string]bool{}
		for _, s := range describe(want) {
			in[s] = true
		}
		for _, s := range describe(got) {
			if !in[s] {
				t.Errorf("only streamed: %s", s)
			}
			delete(in, s)
		}
		for s := range in {
			t.Errorf("only read: %s", s)
		}
	}
}
