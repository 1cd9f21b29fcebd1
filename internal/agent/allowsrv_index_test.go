package agent

import (
	"context"
	"log/slog"
	"runtime"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/containerdtest"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// TestAllowlistOfIndex: containerd knows a multi-platform image by its
// index digest, the server by the platform manifest it scanned; the agent
// asks for the manifest and keeps the list under the index digest.
func TestAllowlistOfIndex(t *testing.T) {
	c, _ := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	img := containerdtest.Image(t, map[string][]byte{"bin/app": []byte("\x7fELF index app")}, "/bin/app")
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img,
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}})
	reg := registrytest.New(t)
	ref := reg.PushIndex(t, "multi/app:1", idx)
	srv := servertest.Start(t, server.Config{APILimits: api.Limits{Rate: -1}})
	srv.Scan(t, ref.Name())
	md, _ := img.Digest()
	srv.SetCertification(t, ref.Context().Digest(md.String()), store.Certified, "test")

	ci := pullImage(t, ctx, c, ref.Name())
	id, _ := idx.Digest()
	if ci.Target().Digest.String() != id.String() {
		t.Fatalf("containerd's target %s, want the index %s", ci.Target().Digest, id)
	}
	a := &Agent{log: slog.New(slog.DiscardHandler), lists: map[string]*allowlist.List{},
		cfg: Config{Allowlists: NewSender(SenderConfig{URL: srv.URL, Token: srv.NodeToken(t, "node-1"), Node: "node-1"})}}
	l, err := a.list(ctx, ci)
	if err != nil {
		t.Fatal(err)
	}
	if l.Source != SourceServer || l.Image != id.String() || l.Len() != 1 {
		t.Fatalf("list: source %q, image %s, %d entries; want the server's, under the index digest", l.Source, l.Image, l.Len())
	}
}
