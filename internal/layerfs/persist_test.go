package layerfs

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"strings"
	"testing"
)

// crafted is a stored layer as an attacker who can write the results
// cache would write it: any entries, content, layer size and notes.
func crafted(t testing.TB, count uint64, recs []record, content []byte, layerSize, notesLen uint64, notes []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	var hdr [16]byte
	binary.BigEndian.PutUint64(hdr[:8], PersistVersion)
	binary.BigEndian.PutUint64(hdr[8:], count)
	b.Write(hdr[:])
	if err := gob.NewEncoder(&b).Encode(recs); err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint64(hdr[:8], uint64(len(content)))
	binary.BigEndian.PutUint64(hdr[8:], layerSize)
	b.Write(hdr[:])
	b.Write(content)
	binary.BigEndian.PutUint64(hdr[:8], notesLen)
	b.Write(hdr[:8])
	b.Write(notes)
	return b.Bytes()
}

func reg(name string, off, size int64) record {
	return record{Name: name, Typ: tar.TypeReg, Mode: 0o644, Off: off, Size: size}
}

// TestDecodeRefusesCrafted: a results cache file is refused, with an
// error, when an entry's offset and size overflow past the content (their
// sum wrapped negative and was taken for inside it), when it keeps more
// than its layer or than the layer limit, and it costs no memory for what
// it only claims (notes of 256 MiB allocated before being read).
func TestDecodeRefusesCrafted(t *testing.T) {
	content := []byte("hello")
	for _, c := range []struct {
		name string
		blob []byte
		opts StreamOptions
	}{
		{"offset and size overflow", crafted(t, 1, []record{reg("/a", 1<<62, 1<<62)}, content, 5, 0, nil), StreamOptions{}},
		{"offset past the content", crafted(t, 1, []record{reg("/a", 3, 3)}, content, 5, 0, nil), StreamOptions{}},
		{"negative size", crafted(t, 1, []record{reg("/a", 0, -1)}, content, 5, 0, nil), StreamOptions{}},
		{"more kept than the layer", crafted(t, 1, []record{reg("/a", 0, 5)}, content, 4, 0, nil), StreamOptions{}},
		{"a layer over the limit", crafted(t, 1, []record{reg("/a", 0, 5)}, content, 100, 0, nil), StreamOptions{MaxLayerSize: 50}},
		{"a name that climbs", crafted(t, 1, []record{reg("/../a", 0, 5)}, content, 5, 0, nil), StreamOptions{}},
		{"count differs", crafted(t, 2, []record{reg("/a", 0, 5)}, content, 5, 0, nil), StreamOptions{}},
		{"absurd count", crafted(t, 1<<62, []record{reg("/a", 0, 5)}, content, 5, 0, nil), StreamOptions{}},
	} {
		if ix, err := Decode(bytes.NewReader(c.blob), "sha256:x", c.opts); err == nil {
			ix.Close()
			t.Errorf("%s: accepted", c.name)
		}
	}
	ok := crafted(t, 1, []record{reg("/a", 0, 5)}, content, 5, 1, nil)
	ix, err := Decode(bytes.NewReader(ok), "sha256:x", StreamOptions{MaxLayerSize: 5})
	if err != nil {
		t.Fatalf("a sound file: %v", err)
	}
	ix.Close()

	claim := crafted(t, 1, []record{reg("/a", 0, 5)}, content, 5, maxNotes, []byte("short"))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := Decode(bytes.NewReader(claim), "sha256:x", StreamOptions{}); err == nil || !strings.Contains(err.Error(), "notes") {
		t.Errorf("notes cut short: %v", err)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("a file of %d bytes claiming %d bytes of notes allocated %d bytes", len(claim), maxNotes, got)
	}
}

// FuzzDecode: whatever a results cache file holds, Decode returns an
// error or a layer whose every file can be read, never a panic; what a
// file only claims is not allocated.
func FuzzDecode(f *testing.F) {
	for _, l := range whiteoutLayers(f) {
		stored := streamEncoded(f, l, StreamOptions{Select: keepBy{want: func(string) bool { return true }}, Inspect: noteAll{}}, int64(len(l)))
		f.Add(stored)
		f.Add(stored[:len(stored)/2])
	}
	content := []byte("hello world")
	f.Add(crafted(f, 1, []record{reg("/a", 1<<62, 1<<62)}, content, 11, 0, nil))
	f.Add(crafted(f, 1<<40, []record{reg("/a", 0, 5)}, content, 11, 0, nil))
	f.Add(crafted(f, 2, []record{reg("/a", 0, 5), {Name: "/b", Typ: tar.TypeLink, Linkname: "/b"}}, content, 11, 0, nil))
	f.Add(crafted(f, 2, []record{{Name: "/d", Typ: tar.TypeSymlink, Linkname: "/d/x"}, reg("/d/x", 0, 3)}, content, 11, 0, nil))
	f.Add(crafted(f, 1, []record{reg("/a", 0, 5)}, content, 11, maxNotes, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := Decode(bytes.NewReader(data), "sha256:f", StreamOptions{MaxLayerSize: 1 << 20})
		if err != nil {
			return
		}
		defer ix.Close()
		fsys, err := BuildIndexed([]*Indexed{ix})
		if err != nil {
			return
		}
		for _, n := range fsys.Files() {
			if n.IsRegular() {
				fsys.ReadNode(n, 1<<20)
			}
			fsys.Stat(n.Path)
		}
		for _, lf := range fsys.LayerFiles(0) {
			if fl, err := fsys.OpenLayerFile(lf); err == nil {
				fl.Read(make([]byte, 64))
			}
		}
	})
}

// noteAll notes every layer with a fixed text, so that seeds carry notes.
type noteAll struct{}

func (noteAll) Layer() LayerInspector { return noteAll{} }
func (noteAll) File(string, fs.FileMode, int64, []byte) io.WriteCloser {
	return nil
}
func (noteAll) Done() ([]byte, error) { return []byte(`{"notes":1}`), nil }

// TestModeTypeFromTypeflag: a hostile tar entry of type regular file
// whose mode bits say directory (040755) was a node that claimed to be a
// directory without children: the next entry under it panicked the
// server (assignment to a nil map), on the seek path, the streaming path
// and from a results cache file alike (found by FuzzDecode). An entry's
// kind now comes from its tar type only.
func TestModeTypeFromTypeflag(t *testing.T) {
	const cISDIR = 0o40000
	layer := layerTar(t, ent{name: "a", body: "x", typ: tar.TypeReg, mode: cISDIR | 0o755}, file("a/b", "y"),
		ent{name: "d", typ: tar.TypeDir, mode: 0o100644}, file("d/e", "z"))
	for name, build := range map[string]func() (*FS, error){
		"seek": func() (*FS, error) { return build(t, layer) },
		"stream": func() (*FS, error) {
			return streamBuild(t, keepBy{want: func(string) bool { return true }}, DigestAll, 0, layer), nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			f, err := build()
			if err != nil {
				t.Fatal(err)
			}
			if got := read(t, f, "/a/b"); got != "y" {
				t.Errorf("/a/b: %q", got)
			}
			if got := read(t, f, "/d/e"); got != "z" {
				t.Errorf("/d/e: %q", got)
			}
		})
	}
}

// TestTooManyEntries: a layer of more entries than the bound is refused,
// on the seek path, the streaming path and from a results cache file,
// before its index grows past it (a layer of millions of empty files
// would hold gigabytes of index).
func TestTooManyEntries(t *testing.T) {
	defer func(n int) { maxEntries = n }(maxEntries)
	maxEntries = 50
	var ents []ent
	for i := range 51 {
		ents = append(ents, file(fmt.Sprintf("f%d", i), ""))
	}
	layer := layerTar(t, ents...)
	if _, err := build(t, layer); !errors.Is(err, ErrTooManyEntries) {
		t.Errorf("seek path: %v", err)
	}
	if _, err := IndexStream(bytes.NewReader(layer), "sha256:many", StreamOptions{}); !errors.Is(err, ErrTooManyEntries) {
		t.Errorf("stream: %v", err)
	}
	maxEntries = 51
	stored := streamEncoded(t, layer, StreamOptions{}, 0)
	maxEntries = 50
	if _, err := Decode(bytes.NewReader(stored), "sha256:many", StreamOptions{}); err == nil {
		t.Error("a cached layer over the bound was decoded")
	}
}

// streamEncoded is layer read by a streaming pass with opts (its size set
// to size) and encoded as a results cache stores it.
func streamEncoded(t testing.TB, layer []byte, opts StreamOptions, size int64) []byte {
	t.Helper()
	ix, err := IndexStream(bytes.NewReader(layer), "sha256:l", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	ix.Size = size
	var buf bytes.Buffer
	if err := ix.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
