package testimage

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Created is the fixed creation time of every test image.
var Created = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Config returns the image config for layers with the given diffIDs.
func Config(diffIDs []v1.Hash, history []string) *v1.ConfigFile {
	cfg := &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      v1.Time{Time: Created},
		Config: v1.Config{
			Env:    []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd:    []string{"/usr/local/bin/bulwark-testapp"},
			User:   "1000",
			Labels: map[string]string{"org.opencontainers.image.source": "https://example.com/bulwark-testapp", "team": "platform"},
		},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: diffIDs},
	}
	for _, h := range history {
		cfg.History = append(cfg.History, v1.History{Created: v1.Time{Time: Created}, CreatedBy: h})
	}
	return cfg
}

// DiffID returns the sha256 of an uncompressed layer file, cached next to it.
func DiffID(layer string) (v1.Hash, error) {
	side := layer + ".sha256"
	if b, err := os.ReadFile(side); err == nil {
		if h, err := v1.NewHash(strings.TrimSpace(string(b))); err == nil {
			return h, nil
		}
	}
	f, err := os.Open(layer)
	if err != nil {
		return v1.Hash{}, err
	}
	defer f.Close()
	hh := sha256.New()
	if _, err := io.Copy(hh, f); err != nil {
		return v1.Hash{}, err
	}
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(hh.Sum(nil))}
	_ = os.WriteFile(side, []byte(h.String()), 0o644) // only a cache
	return h, nil
}

// WriteDockerArchive writes layers (uncompressed tar files) as `docker save`
// does: manifest.json, the config, and each layer as <id>/layer.tar, not
// compressed.
func WriteDockerArchive(out, tag string, layers []string, history []string) error {
	return WriteDockerArchiveWith(out, tag, layers, history, nil)
}

// WriteDockerArchiveWith is WriteDockerArchive with a chance to change the
// config (user, labels, created...) before it is written.
func WriteDockerArchiveWith(out, tag string, layers []string, history []string, edit func(*v1.ConfigFile)) error {
	diffIDs := make([]v1.Hash, len(layers))
	for i, l := range layers {
		h, err := DiffID(l)
		if err != nil {
			return err
		}
		diffIDs[i] = h
	}
	c := Config(diffIDs, history)
	if edit != nil {
		edit(c)
	}
	cfg, err := json.Marshal(c)
	if err != nil {
		return err
	}
	cfgSum := sha256.Sum256(cfg)
	cfgName := hex.EncodeToString(cfgSum[:]) + ".json"
	var layerNames []string
	for _, h := range diffIDs {
		layerNames = append(layerNames, h.Hex+"/layer.tar")
	}
	manifest, err := json.Marshal(tarball.Manifest{{Config: cfgName, RepoTags: []string{tag}, Layers: layerNames}})
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	put := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: Created, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := put(cfgName, cfg); err != nil {
		return err
	}
	for i, l := range layers {
		if err := tw.WriteHeader(&tar.Header{Name: path.Dir(layerNames[i]) + "/", Mode: 0o755, ModTime: Created, Typeflag: tar.TypeDir}); err != nil {
			return err
		}
		if err := copyFileInto(tw, layerNames[i], l); err != nil {
			return err
		}
	}
	if err := put("manifest.json", manifest); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func copyFileInto(tw *tar.Writer, name, file string) error {
	src, err := os.Open(file)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: fi.Size(), ModTime: Created, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.Copy(tw, src)
	return err
}

// Image assembles layers (uncompressed tar files) into an image whose layers
// go-containerregistry gzips when they are pushed or written to a layout.
func Image(layers []string, history []string) (v1.Image, error) {
	var ls []v1.Layer
	for _, l := range layers {
		layer, err := tarball.LayerFromFile(l)
		if err != nil {
			return nil, fmt.Errorf("reading layer %s: %w", l, err)
		}
		ls = append(ls, layer)
	}
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		return nil, err
	}
	diffIDs := make([]v1.Hash, len(layers))
	for i, l := range ls {
		if diffIDs[i], err = l.DiffID(); err != nil {
			return nil, err
		}
	}
	return mutate.ConfigFile(img, Config(diffIDs, history))
}

// WriteLayoutWithBlob writes an OCI layout whose one image has one layer
// whose blob is exactly blob: a corrupt gzip stream, a decompression bomb.
func WriteLayoutWithBlob(dir string, blob []byte) error {
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer(blob, types.OCILayer))
	if err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img)
}
