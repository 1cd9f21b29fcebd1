package secretfile_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/google/go-containerregistry/pkg/name"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/containerdtest"
	"github.com/bulwark-sec/bulwark/internal/secretfile"
	"github.com/bulwark-sec/bulwark/internal/secretstore"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
)

func TestApplyAndLinks(t *testing.T) {
	root := t.TempDir()
	v := &secretfile.Volumes{Root: root}
	resp := agentproto.SecretsResponse{Secrets: []agentproto.DeliveredSecret{
		{Name: "db", Kind: "kv", Version: 1, Data: map[string]string{"user": "u1", "password": "p1"}},
		{Name: "tls/cert.pem", Kind: "file", Version: 1, File: []byte("CERT")},
		{Name: "../escape", Kind: "file", File: []byte("x")},
	}}
	w, r, err := v.Apply("c1", resp)
	if w != 2 || r != 0 || err == nil || !strings.Contains(err.Error(), "not a safe path") {
		t.Fatalf("Apply = %d %d %v", w, r, err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "c1", "db", "password")); string(b) != "p1" {
		t.Fatalf("db/password = %q", b)
	}
	if fi, _ := os.Stat(filepath.Join(root, "c1", "tls", "cert.pem")); fi.Mode().Perm() != 0o444 {
		t.Fatalf("mode %v", fi.Mode())
	}
	// A new version drops a key; a refusal removes the secret.
	v.Apply("c1", agentproto.SecretsResponse{Secrets: []agentproto.DeliveredSecret{{Name: "db", Kind: "kv", Data: map[string]string{"password": "p2"}},
		{Name: "tls/cert.pem", Refused: "drifted"}}})
	if _, err := os.Stat(filepath.Join(root, "c1", "db", "user")); !os.IsNotExist(err) {
		t.Fatal("a key the new version lacks is still there")
	}
	if _, err := os.Stat(filepath.Join(root, "c1", "tls", "cert.pem")); !os.IsNotExist(err) {
		t.Fatal("a refused secret is still there")
	}
	// A link planted in a volume is never written through.
	outside := t.TempDir()
	os.Symlink(outside, filepath.Join(root, "c1", "evil"))
	if _, _, err := v.Apply("c1", agentproto.SecretsResponse{Secrets: []agentproto.DeliveredSecret{{Name: "evil/x", Kind: "file", File: []byte("x")}}}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("through a link: %v", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatal("written outside the volume")
	}
	if _, _, err := v.Apply("../x", resp); err == nil {
		t.Fatal("a container id with a path")
	}
	if err := v.Check(); err == nil && !isTmpfs(root) {
		t.Fatal("Check accepted a volume root that is not a tmpfs")
	}
	if got := secretfile.Wanted(map[string]string{agentproto.LabelSecrets: "db, tls/cert.pem,../x,,"}); strings.Join(got, "|") != "db|tls/cert.pem" {
		t.Fatalf("Wanted = %v", got)
	}
}

func isTmpfs(p string) bool {
	var st unix.Statfs_t
	return unix.Statfs(p, &st) == nil && st.Type == unix.TMPFS_MAGIC
}

// TestDeliveryIntoContainers: the agent's side of delivery with real
// parts: a tmpfs volume root, containers under containerd reading their
// secret from their read-only volume, bulwark server deciding. The
// certified container gets the secret and sees a rotation without a
// restart; when it drifts the secret is removed; an uncertified one never
// gets it.
func TestDeliveryIntoContainers(t *testing.T) {
	c, _ := containerdtest.Start(t)
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=8m,mode=0700"); err != nil {
		t.Fatalf("mounting a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
	vols := &secretfile.Volumes{Root: root}
	if err := vols.Check(); err != nil {
		t.Fatal(err)
	}
	ctx := namespaces.WithNamespace(context.Background(), "bulwark-secretfile")
	bin := containerdtest.BuildStatic(t, "./testdata/reader")
	good := containerdtest.Import(t, ctx, c, containerdtest.Image(t, map[string][]byte{"bin/reader": bin, "variant": []byte("certified"), "out/": nil, "run/secrets/": nil}), "registry.example/checkout:1")
	plain := containerdtest.Import(t, ctx, c, containerdtest.Image(t, map[string][]byte{"bin/reader": bin, "variant": []byte("uncertified"), "out/": nil, "run/secrets/": nil}), "registry.example/checkout:2")
	dg := func(ci client.Image) name.Digest {
		d, _ := name.NewDigest("registry.example/checkout@" + ci.Target().Digest.String())
		return d
	}
	srv := servertest.Start(t, server.Config{WatchInterval: time.Hour, APILimits: api.Limits{Rate: -1}},
		servertest.Image{Digest: dg(good), Tag: "1", Certified: true}, servertest.Image{Digest: dg(plain), Tag: "2"})
	pol := secretstore.Policy{SPIFFEIDs: []string{"spiffe://bulwark.local/ns/shop/**"}, CertifiedUnder: "default", NoDrift: true}
	if code, b := srv.Call(t, srv.Admin, "PUT", "/api/v1/secrets/shop%2Fdb", api.SecretRequest{Data: map[string]string{"password": "v1-on-tmpfs"}, Policy: pol}); code != 201 {
		t.Fatalf("put: %d %s", code, b)
	}

	outs := map[string]string{}
	var running []agentproto.Container
	for pod, img := range map[string]client.Image{"good": good, "plain": plain} {
		id := "reader-" + pod
		vol, _ := vols.Dir(id)
		os.MkdirAll(vol, 0o755)
		out := t.TempDir()
		outs[pod] = filepath.Join(out, "last")
		containerdtest.Run(t, ctx, c, img, id, oci.WithProcessArgs("/bin/reader", "/run/secrets/shop/db/password", "/out/last"),
			oci.WithMounts([]specs.Mount{
				{Destination: "/run/secrets", Type: "bind", Source: vol, Options: []string{"rbind", "ro"}},
				{Destination: "/out", Type: "bind", Source: out, Options: []string{"rbind", "rw"}}}))
		running = append(running, agentproto.Container{ID: id, Namespace: "bulwark-secretfile", Image: img.Target().Digest.String(),
			Labels: map[string]string{agentproto.LabelPodNamespace: "shop", agentproto.LabelPodName: pod, agentproto.LabelSecrets: "shop/db"}})
	}
	if code, b := srv.Call(t, srv.Admin, "POST", "/api/v1/agent/heartbeat", agentproto.Heartbeat{Node: "node-1", Mode: "prevent",
		State: "enforcing (fanotify)", Containers: running}); code != 200 {
		t.Fatalf("heartbeat: %d %s", code, b)
	}
	// One round of the agent's delivery (RunSecrets does this every 10 s).
	deliver := func() map[string]string {
		refused := map[string]string{}
		for _, ctr := range running {
			var resp agentproto.SecretsResponse
			code, b := srv.Call(t, srv.Admin, "POST", "/api/v1/agent/secrets", agentproto.SecretsRequest{Node: "node-1", Container: ctr.ID,
				Names: secretfile.Wanted(ctr.Labels)})
			if code != 200 || json.Unmarshal([]byte(b), &resp) != nil {
				t.Fatalf("agent secrets: %d %s", code, b)
			}
			if _, _, err := vols.Apply(ctr.ID, resp); err != nil {
				t.Fatal(err)
			}
			refused[ctr.ID] = resp.Secrets[0].Refused
		}
		return refused
	}
	seen := func(pod, want string) string {
		var got string
		for end := time.Now().Add(45 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			b, _ := os.ReadFile(outs[pod])
			if got = string(b); got == want {
				break
			}
		}
		return got
	}
	var refused map[string]string
	for end := time.Now().Add(45 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if refused = deliver(); refused["reader-good"] == "" { // the server's view refreshes every second
			break
		}
	}
	if got := seen("good", "v1-on-tmpfs"); got != "v1-on-tmpfs" {
		t.Fatalf("the certified container reads %q (refused: %q)", got, refused["reader-good"])
	}
	if got := seen("plain", "missing"); got != "missing" || !strings.Contains(refused["reader-plain"], "not certified") {
		t.Fatalf("the uncertified container reads %q, refused %q", got, refused["reader-plain"])
	}
	srv.Call(t, srv.Admin, "POST", "/api/v1/secrets/shop%2Fdb/rotate", api.SecretValue{Data: map[string]string{"password": "v2-rotated"}})
	deliver()
	if got := seen("good", "v2-rotated"); got != "v2-rotated" {
		t.Fatalf("after rotation, without a restart: %q", got)
	}
	srv.Call(t, srv.Admin, "POST", "/api/v1/agent/events", agentproto.Batch{Node: "node-1", Spool: "s", Events: []agentproto.Event{{
		Seq: 1, Time: time.Now(), Verdict: "refused", Reason: "not-in-image", PID: 7, Path: "/tmp/x", Container: "reader-good",
		Namespace: "bulwark-secretfile", Image: good.Target().Digest.String()}}})
	for end := time.Now().Add(45 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if refused = deliver(); refused["reader-good"] != "" {
			break
		}
	}
	if got := seen("good", "missing"); got != "missing" || !strings.Contains(refused["reader-good"], "drifted") {
		t.Fatalf("after drift the container reads %q (refused %q)", got, refused["reader-good"])
	}
	if _, log := srv.Call(t, srv.Admin, "GET", "/api/v1/audit?limit=500", nil); !strings.Contains(log, "drifted") || strings.Contains(log, "v2-rotated") {
		t.Fatal("the audit log lacks the refusal, or holds a value")
	}
}
