package containerdtest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// BuildStatic compiles the Go program in pkg (a directory relative to the
// test's package, "./testdata/probe") as a static binary and returns it.
func BuildStatic(t testing.TB, pkg string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Import loads img into containerd under ref and unpacks it for the
// overlayfs snapshotter; the returned image's Target().Digest is the
// manifest digest as containerd knows it.
func Import(t testing.TB, ctx context.Context, c *client.Client, img v1.Image, ref string) client.Image {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tarball.Write(tag, img, &buf); err != nil {
		t.Fatal(err)
	}
	imgs, err := c.Import(ctx, &buf)
	if err != nil {
		t.Fatalf("importing the image: %v", err)
	}
	ci := client.NewImage(c, imgs[0])
	if err := ci.Unpack(ctx, "overlayfs"); err != nil {
		t.Fatalf("unpacking the image: %v", err)
	}
	return ci
}
