package secrets

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
)

// file is one regular file of a test layer; a name whose base starts with
// .wh. is a whiteout.
type file struct{ name, body string }

func layerTar(t testing.TB, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.body)), Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// diffID names test layer i.
func diffID(i int) string { return fmt.Sprintf("sha256:layer%d", i) }

// image builds the squashed view of layers given bottom first. scan also
// streams the same layers (tars) to check that both ways find the same.
func image(t testing.TB, layers ...[]file) *layerfs.FS {
	t.Helper()
	var ls []layerfs.Layer
	var tars [][]byte
	for i, files := range layers {
		b := layerTar(t, files...)
		tars = append(tars, b)
		ls = append(ls, layerfs.Layer{DiffID: diffID(i), Data: bytes.NewReader(b), Size: int64(len(b))})
	}
	fsys, err := layerfs.Build(context.Background(), ls)
	if err != nil {
		t.Fatal(err)
	}
	tarsOf.Store(fsys, tars)
	return fsys
}

// tarsOf holds the layer tars of each view image built.
var tarsOf sync.Map

// streamed reads tars in one streaming pass each with the scanner as the
// inspector, keeping no content at all, through an encode and decode as the
// results cache does, and squashes them.
func streamed(t testing.TB, opts Options, tars [][]byte) *layerfs.FS {
	t.Helper()
	insp, err := opts.Inspector()
	if err != nil {
		t.Fatal(err)
	}
	var ixs []*layerfs.Indexed
	for i, b := range tars {
		ix, err := layerfs.IndexStream(bytes.NewReader(b), diffID(i), layerfs.StreamOptions{Inspect: insp, Digests: layerfs.DigestNone})
		if err != nil {
			t.Fatal(err)
		}
		var enc bytes.Buffer
		if err := ix.Encode(&enc); err != nil {
			t.Fatal(err)
		}
		ix.Close()
		if ix, err = layerfs.Decode(&enc, diffID(i), layerfs.StreamOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ix.Close() })
		ixs = append(ixs, ix)
	}
	fsys, err := layerfs.BuildIndexed(ixs)
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

// scan scans fsys and cfg and checks the redaction of every finding.
func scan(t testing.TB, fsys *layerfs.FS, cfg *v1.ConfigFile, opts Options) []Finding {
	t.Helper()
	fs, err := Scan(context.Background(), fsys, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if tars, ok := tarsOf.Load(fsys); ok {
		st, err := Scan(context.Background(), streamed(t, opts, tars.([][]byte)), cfg, opts)
		if err != nil {
			t.Fatalf("streaming: %v", err)
		}
		if !reflect.DeepEqual(st, fs) {
			t.Errorf("streaming pass found\n  %s\nreading the layers found\n  %s", strings.Join(describe(st), "\n  "), strings.Join(describe(fs), "\n  "))
		}
	}
	for _, f := range fs {
		if err := checkRedacted(f.Redacted); err != nil {
			t.Errorf("%s at %s:%d: %v", f.Rule, f.Path, f.Line, err)
		}
	}
	return fs
}

// checkRedacted: at most the first four characters kept, then only '*',
// at most maxRedacted characters in all.
func checkRedacted(r string) error {
	switch {
	case r == "":
		return fmt.Errorf("empty redaction")
	case len(r) > maxRedacted:
		return fmt.Errorf("redacted %q is longer than %d", r, maxRedacted)
	case len(r) > 4 && strings.Trim(r[4:], "*") != "":
		return fmt.Errorf("redacted %q keeps more than 4 characters", r)
	}
	return nil
}

// describe renders findings as "rule path:line layer" lines.
func describe(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		s := fmt.Sprintf("%s %s:%d", f.Rule, f.Path, f.Line)
		if f.Layer != "" {
			s += " " + f.Layer
		}
		if f.Deleted {
			s += " deleted"
		}
		out = append(out, s)
	}
	return out
}

func assertLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// fakes makes fake, format-valid secrets from a fixed seed. planted records
// every secret made, for the leak test.
type fakes struct {
	r       *rand.Rand
	planted []string
}

func newFakes() *fakes { return &fakes{r: rand.New(rand.NewPCG(7, 11))} }

const (
	alnum     = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	upperB32  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	base64Set = alnum + "+/"
	urlSafe   = alnum + "-_"
)

func (f *fakes) str(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[f.r.IntN(len(alphabet))]
	}
	return string(b)
}

// plant records s as a secret and returns it.
func (f *fakes) plant(s string) string {
	f.planted = append(f.planted, s)
	return s
}

// github makes a token with GitHub's CRC32 checksum.
func (f *fakes) github(prefix string) string {
	body := f.str(alnum, 30)
	return f.plant(prefix + body + base62(crc32.ChecksumIEEE([]byte(body)), 6))
}

func (f *fakes) digits(n int) string { return f.str("0123456789", n) }

// password is a human-looking password: letters, digits and a symbol.
func (f *fakes) password() string {
	return f.plant(f.str(alnum, 6) + "-" + f.str(alnum, 7) + "!")
}

// pem makes a PEM block with a random body of lines lines.
func (f *fakes) pem(typ string, headers map[string]string, lines int) string {
	body := []byte(f.str(base64Set, 48*lines))
	der, _ := base64.StdEncoding.DecodeString(string(body))
	for i := 0; i < lines; i++ {
		f.plant(string(body[i*48 : i*48+48]))
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Headers: headers, Bytes: der}))
}

// ecKey and edKey are real (throw-away) keys.
func (f *fakes) ecKey(t testing.TB) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return f.plantPEM(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

func (f *fakes) edKey(t testing.TB) string {
	_, k, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return f.plantPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// plantPEM records each body line of a PEM block.
func (f *fakes) plantPEM(b []byte) string {
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "-----") {
			f.plant(l)
		}
	}
	return string(b)
}
