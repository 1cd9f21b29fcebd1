package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/testimage"
)

// smallLayers writes two tiny layer tars standing in for the debootstrap'd
// base and the application (the real ones need root and the network).
func smallLayers(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, name := range []string{"base", "app"} {
		root := t.TempDir()
		if err := os.WriteFile(filepath.Join(root, name+".txt"), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		tarFile := filepath.Join(t.TempDir(), name+".tar")
		if err := testimage.TarDir(root, tarFile); err != nil {
			t.Fatal(err)
		}
		out = append(out, tarFile)
	}
	return out
}

// TestDemoImagePassesImageAge: the image mkimage writes by default (no
// -created) is young enough for the default policy's image-age rule, in
// both the docker archive and the OCI layout; it once carried a fixed 2026-01-02
// creation date, which no default policy would certify 90 days later.
func TestDemoImagePassesImageAge(t *testing.T) {
	out := t.TempDir()
	_, created, err := options([]string{"-out", out})
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	if err := write(out, smallLayers(t), []string{"base", "app"}, created, &progress); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(progress.String(), "done in"); got != 2 {
		t.Errorf("progress reports %d finished steps, want 2:\n%s", got, progress.String())
	}

	archived, err := tarball.ImageFromPath(filepath.Join(out, "image.tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := layout.ImageIndexFromPath(filepath.Join(out, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("OCI layout index: %v, %+v", err, im)
	}
	laidOut, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}

	def, err := policy.Parse("(built-in defaults)", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, img := range map[string]v1.Image{"docker archive": archived, "OCI layout": laidOut} {
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		d, err := def.Evaluate(&policy.Input{Config: cfg, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range d.Rules {
			if r.Name == policy.RuleImageAge && r.Status != policy.StatusPass {
				t.Errorf("%s: image-age %s: %s %v", name, r.Status, r.Message, r.Evidence)
			}
		}
	}
}

// TestOptions: -created sets the creation time exactly; bad input is an
// error, not a panic or a silent default.
func TestOptions(t *testing.T) {
	_, created, err := options([]string{"-created", "2025-03-04T05:06:07Z"})
	if err != nil || !created.Equal(time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)) {
		t.Errorf("created %v, %v", created, err)
	}
	for _, bad := range [][]string{{"-created", "yesterday"}, {"extra"}, {"-nope"}} {
		if _, _, err := options(bad); err == nil {
			t.Errorf("options(%q): no error", bad)
		}
	}
}
