// Package allowlist measures where bulwark-agent's allowlist of an image
// comes from, on Debian bookworm minbase (internal/testimage): the
// server's answer (GET /api/v1/agent/allowlists/{digest}, decode, compile)
// against the image's layer hashed on the node (allowlist.FromLayers over
// the compressed layer, which is what the agent does with containerd's
// content store). Both are paid when a container of a digest not seen
// before is adopted, before it is watched.
//
//	BULWARK_BENCH=1 go test ./bench/allowlist -run Sources -v
package allowlist

import (
	"bytes"
	"context"
	"io"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/bulwark-sec/bulwark/internal/agent"
	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/testimage"
)

const runs = 5

func TestSources(t *testing.T) {
	if os.Getenv("BULWARK_BENCH") == "" {
		t.Skip("a measurement: set BULWARK_BENCH=1")
	}
	path, err := testimage.DebianLayer()
	if err != nil {
		t.Skipf("no Debian layer here: %v", err)
	}
	layer, err := tarball.LayerFromFile(path, tarball.WithCompressedCaching)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config.Entrypoint = "linux", runtime.GOARCH, []string{"/bin/bash"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	reg := registrytest.New(t)
	ref := reg.Push(t, "debian/minbase:12", img)
	srv := servertest.Start(t, server.Config{APILimits: api.Limits{Rate: -1}})
	start := time.Now()
	srv.Scan(t, ref.Name())
	t.Logf("the server's scan (streaming, executables hashed): %v", time.Since(start).Round(time.Millisecond))
	d, _ := img.Digest()
	digest := d.String()
	srv.SetCertification(t, ref.Context().Digest(digest), store.Certified, "bench")
	s := agent.NewSender(agent.SenderConfig{URL: srv.URL, Token: srv.NodeToken(t, "node-1"), Node: "node-1"})
	cfg := allowlist.Config{Entrypoint: cf.Config.Entrypoint}
	ctx := context.Background()

	fromServer := measure(t, func() *allowlist.List {
		ans, err := s.Allowlist(ctx, digest)
		if err != nil {
			t.Fatal(err)
		}
		l, err := allowlist.FromInventory(digest, ans.Files, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
	rc, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	compressed, _ := io.ReadAll(rc)
	diffID, _ := layer.DiffID()
	onNode := measure(t, func() *allowlist.List {
		l, err := allowlist.FromLayers(ctx, digest, []allowlist.Layer{{DiffID: diffID.String(), Open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(compressed)), nil
		}}}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
	t.Logf("layer %d MB compressed; load average %s", len(compressed)>>20, loadAverage())
	t.Logf("from the server: median %v (%d allowed contents)", fromServer.median, fromServer.allowed)
	t.Logf("hashed on the node: median %v (%d allowed contents)", onNode.median, onNode.allowed)
	if fromServer.allowed != onNode.allowed {
		t.Errorf("the two lists differ: %d and %d allowed contents", fromServer.allowed, onNode.allowed)
	}
}

type result struct {
	median  time.Duration
	allowed int
}

func measure(t *testing.T, f func() *allowlist.List) result {
	var took []time.Duration
	var l *allowlist.List
	for range runs {
		start := time.Now()
		l = f()
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	return result{median: took[len(took)/2].Round(100 * time.Microsecond), allowed: l.Len()}
}

func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if len(b) > 14 {
		return string(b[:14])
	}
	return string(b)
}
