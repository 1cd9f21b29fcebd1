// Command streamimage builds the streaming-inventory benchmark images: about
// 2 GB in 20 gzip layers (the debootstrap'd bookworm minbase, the
// application layer with a Go binary and an npm tree, and 18 layers of
// incompressible data), and a second image that shares the first 19 layers,
// as OCI layouts under -out (oci, oci2) plus an OCI archive of the first
// (oci.tar, for tools that read archives only; Trivy reads the layout). With -serve ADDR it then
// serves both from an in-process registry (bench/one:1, bench/two:1, blobs
// on disk) until interrupted, printing the address.
//
//	go run ./bench/streamimage -out /tmp/bulwark-stream
//	go run ./bench/streamimage -out /tmp/bulwark-stream -serve 127.0.0.1:5123
package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"github.com/bulwark-sec/bulwark/internal/testimage"
)

const (
	dataLayers   = 18
	filesPerData = 4
	fileSize     = 26 << 20 // 4 x 26 MiB x 18 layers: about 1.9 GB of data
)

func main() {
	out := flag.String("out", filepath.Join(os.TempDir(), "bulwark-stream"), "output directory")
	serve := flag.String("serve", "", "serve both images from an in-process registry on this address")
	flag.Parse()
	if err := run(*out, *serve); err != nil {
		fmt.Fprintf(os.Stderr, "streamimage: %v\n", err)
		os.Exit(1)
	}
}

func run(out, serve string) error {
	if _, err := os.Stat(filepath.Join(out, "oci2", "index.json")); err != nil {
		if err := build(out); err != nil {
			return err
		}
	}
	if serve == "" {
		return nil
	}
	return serveRegistry(out, serve)
}

// blob is one gzip layer written to a layout's blobs directory.
type blob struct {
	digest, diffID v1.Hash
	size           int64
}

func build(out string) error {
	base, err := testimage.DebianLayer()
	if err != nil {
		return err
	}
	app, err := testimage.AppLayer()
	if err != nil {
		return err
	}
	blobs := filepath.Join(out, "blobs")
	if err := os.MkdirAll(filepath.Join(blobs, "sha256"), 0o755); err != nil {
		return err
	}
	var layers []blob
	for _, f := range []string{base, app} {
		b, err := gzipLayer(blobs, func(w io.Writer) error {
			r, err := os.Open(f)
			if err != nil {
				return err
			}
			defer r.Close()
			_, err = io.Copy(w, r)
			return err
		})
		if err != nil {
			return err
		}
		layers = append(layers, b)
	}
	for i := range dataLayers + 1 { // the last one is the second image's own
		b, err := gzipLayer(blobs, func(w io.Writer) error { return dataLayer(w, i) })
		if err != nil {
			return err
		}
		layers = append(layers, b)
		fmt.Fprintf(os.Stderr, "layer %d/%d\n", len(layers), dataLayers+3)
	}
	one := append(append([]blob{}, layers[:2+dataLayers-1]...), layers[2+dataLayers-1])
	two := append(append([]blob{}, layers[:2+dataLayers-1]...), layers[2+dataLayers])
	for name, ls := range map[string][]blob{"oci": one, "oci2": two} {
		if err := writeLayout(filepath.Join(out, name), blobs, ls); err != nil {
			return err
		}
	}
	cmd := exec.Command("tar", "-cf", filepath.Join(out, "oci.tar"), "-C", filepath.Join(out, "oci"), "--dereference", ".")
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

// dataLayer writes a tar of incompressible files and a small text file.
func dataLayer(w io.Writer, i int) error {
	tw := tar.NewWriter(w)
	rng := rand.NewChaCha8([32]byte{byte(i), 42})
	for j := range filesPerData {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/%02d/blob-%d.bin", i, j), Mode: 0o644, Size: fileSize, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := io.CopyN(tw, rng, fileSize); err != nil {
			return err
		}
	}
	readme := fmt.Sprintf("data layer %d\n", i)
	tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/%02d/README", i), Mode: 0o644, Size: int64(len(readme)), Typeflag: tar.TypeReg})
	io.WriteString(tw, readme)
	return tw.Close()
}

// gzipLayer writes the tar that fill produces as a gzip blob, returning
// its digest, diffID and size.
func gzipLayer(blobs string, fill func(io.Writer) error) (blob, error) {
	tmp, err := os.CreateTemp(blobs, ".layer-*")
	if err != nil {
		return blob{}, err
	}
	defer os.Remove(tmp.Name())
	ch, dh := sha256.New(), sha256.New()
	zw, _ := gzip.NewWriterLevel(io.MultiWriter(tmp, ch), gzip.BestSpeed)
	if err := fill(io.MultiWriter(zw, dh)); err != nil {
		return blob{}, err
	}
	if err := zw.Close(); err != nil {
		return blob{}, err
	}
	size, _ := tmp.Seek(0, io.SeekCurrent)
	tmp.Close()
	b := blob{digest: hash(ch.Sum(nil)), diffID: hash(dh.Sum(nil)), size: size}
	return b, os.Rename(tmp.Name(), filepath.Join(blobs, "sha256", b.digest.Hex))
}

func hash(sum []byte) v1.Hash { return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum)} }

// writeLayout writes an OCI layout whose blobs are hard links to the shared
// ones (layout readers refuse symbolic links).
func writeLayout(dir, blobs string, layers []blob) error {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	put := func(data []byte) (v1.Hash, error) {
		s := sha256.Sum256(data)
		h := hash(s[:])
		return h, os.WriteFile(filepath.Join(dir, "blobs", "sha256", h.Hex), data, 0o644)
	}
	cfg := v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCILayer, Digest: l.digest, Size: l.size})
		link := filepath.Join(dir, "blobs", "sha256", l.digest.Hex)
		os.Remove(link)
		if err := os.Link(filepath.Join(blobs, "sha256", l.digest.Hex), link); err != nil {
			return err
		}
	}
	craw, _ := json.Marshal(cfg)
	ch, err := put(craw)
	if err != nil {
		return err
	}
	m.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: ch, Size: int64(len(craw))}
	mraw, _ := json.Marshal(m)
	mh, err := put(mraw)
	if err != nil {
		return err
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex,
		Manifests: []v1.Descriptor{{MediaType: types.OCIManifestSchema1, Digest: mh, Size: int64(len(mraw))}}}
	iraw, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(dir, "index.json"), iraw, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// serveRegistry pushes both layouts to an in-process registry (blobs on
// disk) and serves it until interrupted.
func serveRegistry(out, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	store := filepath.Join(out, "registry")
	os.MkdirAll(store, 0o755)
	reg := registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(store)), registry.Logger(log.New(io.Discard, "", 0)))
	srv := &http.Server{Handler: blobFiles(store, reg)}
	go srv.Serve(ln)
	host := ln.Addr().String()
	for dir, tag := range map[string]string{"oci": "bench/one:1", "oci2": "bench/two:1"} {
		p, err := layout.FromPath(filepath.Join(out, dir))
		if err != nil {
			return err
		}
		idx, err := p.ImageIndex()
		if err != nil {
			return err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return err
		}
		img, err := p.Image(im.Manifests[0].Digest)
		if err != nil {
			return err
		}
		ref, err := name.ParseReference(host+"/"+tag, name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(ref, img); err != nil {
			return fmt.Errorf("pushing %s: %w", ref, err)
		}
	}
	fmt.Println(host)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, os.Kill)
	<-sig
	return srv.Close()
}

// blobPath matches a blob download: /v2/<repo>/blobs/sha256:<hex>.
var blobPath = regexp.MustCompile(`^/v2/.+/blobs/sha256:([0-9a-f]{64})$`)

// blobFiles serves blob downloads straight from the registry's disk store
// (sendfile), as a production registry does, and everything else through
// reg. go-containerregistry's registry copies a blob through user space: 1.8 s
// of CPU for the 2 GB image, on the same two cores as the tool measured.
func blobFiles(store string, reg http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := blobPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet {
			f, err := os.Open(filepath.Join(store, "sha256", m[1]))
			if err == nil {
				defer f.Close()
				fi, err := f.Stat()
				if err == nil {
					w.Header().Set("Docker-Content-Digest", "sha256:"+m[1])
					w.Header().Set("Content-Type", "application/octet-stream")
					http.ServeContent(w, r, "", fi.ModTime(), f)
					return
				}
			}
		}
		reg.ServeHTTP(w, r)
	})
}
