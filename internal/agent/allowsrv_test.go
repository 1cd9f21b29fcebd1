package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/containerdtest"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// TestAllowlistFromServer: the server scans an image pushed to an
// in-process registry; containerd pulls the same digest, and its local
// copy of the layer is then tampered with to hold one more executable
// (the probe plus a zero byte: what the probe's "copy" writes).
//   - the server refuses the digest while it is not certified (and no
//     heartbeat reports it running): the agent falls back to the content
//     store, says so (source content-store, a refused fallback counted),
//     and the tampered list lets the copied binary run; once certified,
//     the running agent replaces the list with the server's (upgradeLists)
//     and the copy is refused;
//   - certified: a fresh agent's list comes from the server, the copied
//     binary is refused with EPERM, the image's binaries run;
//   - the server down: the answer kept on disk is used (server-cache); an
//     agent without that copy falls back (unreachable).
func TestAllowlistFromServer(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	probe := buildProbe(t)
	pad := make([]byte, 4<<20) // incompressible: the tampered layer, without it, is smaller than the original
	rand.Read(pad)
	files := map[string][]byte{"bin/probe": probe, "bin/tool": probe, "tmp/": nil, "ctl/": nil}
	files["pad"] = pad
	img := containerdtest.Image(t, files, "/bin/probe", "serve", "/ctl")
	delete(files, "pad")
	files["bin/extra"] = append(append([]byte(nil), probe...), 0)
	tampered := containerdtest.Image(t, files, "/bin/probe", "serve", "/ctl")

	reg := registrytest.New(t)
	ref := reg.Push(t, "probe/app:1", img)
	srv := servertest.Start(t, server.Config{APILimits: api.Limits{Rate: -1}})
	srv.Scan(t, ref.Name())
	dg, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	digest := dg.String()
	token := srv.NodeToken(t, "node-1")

	ci := pullImage(t, ctx, c, ref.Name())
	if got := ci.Target().Digest.String(); got != digest {
		t.Fatalf("containerd pulled %s, the server scanned %s", got, digest)
	}
	tamperLayer(t, addr, img, tampered)
	drifted := sha256.Sum256(files["bin/extra"])
	if l, err := (&Agent{}).fromContent(ctx, ci, digest, allowlist.Config{}); err != nil {
		t.Fatal(err)
	} else if _, ok := l.Allows(drifted); !ok {
		t.Fatal("the tampered content store does not list the extra binary: the tamper did not take")
	}

	k := create(t, ctx, c, ci, "srv")
	k.start(t, ctx)
	if got := k.do(t, "copy /bin/probe /tmp/x"); got != "ok" {
		t.Fatalf("copying: %s", got)
	}
	withServer := func(url, cache string) func(*Config) {
		return func(cfg *Config) {
			cfg.Allowlists = NewSender(SenderConfig{URL: url, Token: token, Node: "node-1"})
			cfg.AllowlistCache = cache
		}
	}
	cache := t.TempDir()

	defer func(d time.Duration) { allowRetry = d }(allowRetry)
	allowRetry = 300 * time.Millisecond

	// Not certified: refused by the server; made on the node.
	var col collector
	a, stop := startAgent(t, addr, ModePrevent, &col, withServer(srv.URL, t.TempDir()))
	if info := waitWatched(t, a, "srv"); info.Allowlist != SourceContent || a.Stats().Allowlists.Refused < 1 {
		t.Fatalf("an uncertified digest: %+v, %+v; want the content store after a refusal", info, a.Stats().Allowlists)
	}
	if got := k.do(t, "run /tmp/x"); got != "ok" {
		t.Fatalf("the tampered local list: %s, want the copy to run", got)
	}
	// Certified: the running agent takes the server's list.
	srv.SetCertification(t, ref.Context().Digest(digest), store.Certified, "test")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if info, _ := a.Container("srv"); info.Allowlist == SourceServer {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the list was not replaced by the server's: %+v", a.Stats().Allowlists)
		}
	}
	if got := k.do(t, "run /tmp/x"); got != "eperm" {
		t.Fatalf("after the server's list replaced the local one: %s, want eperm", got)
	}
	stop()

	// A fresh agent: the server's list at adoption.
	a, stop = startAgent(t, addr, ModePrevent, &col, withServer(srv.URL, cache))
	if info := waitWatched(t, a, "srv"); info.Allowlist != SourceServer || a.Stats().Allowlists.Server != 1 {
		t.Fatalf("a certified digest: %+v, %+v; want the server's list", info, a.Stats().Allowlists)
	}
	if hb := a.Heartbeat(nil); len(hb.Containers) != 1 || hb.Containers[0].Allowlist != SourceServer {
		t.Errorf("heartbeat containers: %+v", hb.Containers)
	}
	if got := k.do(t, "run /tmp/x"); got != "eperm" {
		t.Fatalf("a binary the local store lists but the server's scan does not: %s, want eperm", got)
	}
	if got := k.do(t, "run /bin/tool"); got != "ok" {
		t.Fatalf("an image binary: %s", got)
	}
	if e := col.find("srv", "refused"); e == nil || e.Image != digest || e.Digest != "sha256:"+hexOf(drifted) {
		t.Errorf("refused event: %+v", e)
	}
	checkRan(t, srv, a, token, "sha256:"+hexOf(sha256.Sum256(probe)))
	stop()

	// The server down: the disk copy, or the content store.
	srv.Stop()
	a, stop = startAgent(t, addr, ModePrevent, &col, withServer(srv.URL, cache))
	if info := waitWatched(t, a, "srv"); info.Allowlist != SourceServerCache {
		t.Fatalf("server down, answer on disk: %+v", info)
	}
	if got := k.do(t, "run /tmp/x"); got != "eperm" {
		t.Fatalf("the cached server list: %s, want eperm", got)
	}
	stop()
	a, stop = startAgent(t, addr, ModeDetect, &col, withServer(srv.URL, t.TempDir()))
	if info := waitWatched(t, a, "srv"); info.Allowlist != SourceContent || a.Stats().Allowlists.Unreachable != 1 {
		t.Fatalf("server down, nothing on disk: %+v, %+v", info, a.Stats().Allowlists)
	}
	stop()
}

// checkRan: what ran in the container (the image binary, once; not the
// refused copy) is in the heartbeat and, once sent, in the server's
// workloads of the node.
func checkRan(t *testing.T, srv *servertest.Server, a *Agent, token, content string) {
	t.Helper()
	// Counted after the exec is answered: the exec's caller can be told
	// before the agent has counted it.
	hb := a.Heartbeat(nil)
	for deadline := time.Now().Add(5 * time.Second); len(hb.Containers) == 1 && len(hb.Containers[0].Ran) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		hb = a.Heartbeat(nil)
	}
	hb.Node = "node-1"
	if len(hb.Containers) != 1 || len(hb.Containers[0].Ran) != 1 {
		t.Fatalf("heartbeat: %+v, want one program ran", hb.Containers)
	}
	r := hb.Containers[0].Ran[0]
	if r.Digest != content || r.Count != 1 || (r.Path != "/bin/tool" && r.Path != "/bin/probe") || r.First.IsZero() || r.Last.Before(r.First) {
		t.Errorf("ran: %+v, want %s once from an image path", r, content)
	}
	s := NewSender(SenderConfig{URL: srv.URL, Token: token, Node: "node-1"})
	if err := s.post(t.Context(), "/api/v1/agent/heartbeat", hb, nil); err != nil {
		t.Fatal(err)
	}
	code, body := srv.Call(t, srv.Viewer, "GET", "/api/v1/runtime/workloads?node=node-1", nil)
	var got struct {
		Workloads []struct {
			Container, Allowlist string
			Ran                  []struct {
				Digest string
				Count  int
			}
		}
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || len(got.Workloads) != 1 {
		t.Fatalf("workloads: %d %s", code, body)
	}
	if w := got.Workloads[0]; w.Container != "srv" || w.Allowlist != SourceServer || len(w.Ran) != 1 || w.Ran[0].Digest != content || w.Ran[0].Count != 1 {
		t.Errorf("the server's workload: %+v", w)
	}
}

func hexOf(d [32]byte) string { return allowlist.Digest(d).String()[len("sha256:"):] }

// pullImage pulls ref from a plain-HTTP registry into containerd, unpacked.
func pullImage(t *testing.T, ctx context.Context, c *client.Client, ref string) client.Image {
	t.Helper()
	img, err := c.Pull(ctx, ref, client.WithPullUnpack, client.WithPullSnapshotter("overlayfs"),
		client.WithResolver(docker.NewResolver(docker.ResolverOptions{PlainHTTP: true})))
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	return img
}

// tamperLayer overwrites the blob of img's only layer in the content store
// of the containerd at addr (containerdtest keeps its root beside the
// socket) with the layer of tampered.
func tamperLayer(t *testing.T, addr string, img, tampered v1.Image) {
	t.Helper()
	orig, _ := img.Layers()
	d, err := orig[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	repl, _ := tampered.Layers()
	rc, err := repl[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	size, _ := orig[0].Size()
	if int64(len(b)) > size {
		t.Fatalf("the tampered layer (%d bytes) is larger than the original (%d): the store reads only the original's size", len(b), size)
	}
	p := filepath.Join(filepath.Dir(addr), "root", "io.containerd.content.v1.content", "blobs", "sha256", d.Hex)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the layer blob: %v", err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d.String(), "sha256:") {
		t.Fatalf("layer digest %s", d)
	}
}
