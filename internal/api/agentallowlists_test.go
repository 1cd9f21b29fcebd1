package api

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/kube"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// TestAgentAllowlistRoute: the route answers the stored file table and
// config of a certified digest to any agent token; a digest that is not
// certified only to the node whose heartbeat reports it running; an
// unknown digest is 403 like an uncertified one (a node cannot probe what
// the server knows); a node-bound token cannot ask in another node's
// name; anonymous callers get 401, bad input 400.
func TestAgentAllowlistRoute(t *testing.T) {
	h, sti := newTestAPI(t)
	st := sti.(*store.Store)
	ctx := t.Context()
	certified, running, unknown := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64), "sha256:"+strings.Repeat("c", 64)
	files := []sbom.File{{Path: "/bin/app", Type: "file", Mode: "0755", Layer: "sha256:l1", Digest: "sha256:" + strings.Repeat("1", 64)}}
	for _, d := range []string{certified, running} {
		cfg := `{"config":{"Entrypoint":["/bin/app"],"Cmd":["serve"],"Env":["PATH=/bin"]}}`
		if err := st.PutImage(ctx, store.Image{Digest: d, Repository: "r/app", Config: []byte(cfg)}); err != nil {
			t.Fatal(err)
		}
		if err := st.PutInventory(ctx, d, &sbom.SBOM{Schema: sbom.SchemaVersion}, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.PutFileTable(ctx, d, files); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetCertification(ctx, certified, store.Certified, "test"); err != nil {
		t.Fatal(err)
	}
	if err := st.SetCertification(ctx, running, store.NotCertified, "test"); err != nil {
		t.Fatal(err)
	}
	// Certified, scanned before file tables were kept: 404, the agent falls back.
	old := "sha256:" + strings.Repeat("d", 64)
	if err := st.PutImage(ctx, store.Image{Digest: old, Repository: "r/app"}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetCertification(ctx, old, store.Certified, "test"); err != nil {
		t.Fatal(err)
	}
	_, node1, _ := st.CreateToken(ctx, NodeTokenPrefix+"node-1", store.RoleOperator)
	_, node2, _ := st.CreateToken(ctx, NodeTokenPrefix+"node-2", store.RoleOperator)
	_, viewer, _ := st.CreateToken(ctx, "a-viewer", store.RoleViewer)
	call := func(token, digest, node string) (int, string) {
		req := httptest.NewRequest("GET", agentproto.AllowlistPath+digest+"?node="+node, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	hb := agentproto.Heartbeat{Node: "node-1", Mode: "detect", State: agentproto.StateDetectingOnly,
		Containers: []agentproto.Container{{ID: "c1", Namespace: "default", Image: running}}}
	b, _ := json.Marshal(hb)
	req := httptest.NewRequest("POST", agentproto.HeartbeatPath, strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+node1)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("heartbeat: %d %s", rec.Code, rec.Body)
	}

	code, body := call(node2, certified, "node-2")
	var got agentproto.Allowlist
	if code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
		t.Fatalf("a certified digest: %d %s", code, body)
	}
	if err := got.Validate(certified); err != nil || got.Certification != store.Certified || len(got.Files) != 1 || got.Files[0] != files[0] ||
		got.Entrypoint[0] != "/bin/app" || got.Cmd[0] != "serve" || got.Env[0] != "PATH=/bin" {
		t.Errorf("a certified digest: %+v (%v)", got, err)
	}
	if code, body := call(node1, running, "node-1"); code != http.StatusOK || !strings.Contains(body, `"not_certified"`) {
		t.Errorf("an uncertified digest running on the caller's node: %d %s", code, body)
	}
	for _, c := range []struct {
		name, token, digest, node string
		want                      int
	}{
		{"anonymous", "", certified, "node-1", http.StatusUnauthorized},
		{"a viewer token", viewer, certified, "node-1", http.StatusForbidden},
		{"another node's name", node1, certified, "node-2", http.StatusForbidden},
		{"uncertified, running on another node", node2, running, "node-2", http.StatusForbidden},
		{"unknown", node1, unknown, "node-1", http.StatusForbidden},
		{"certified, no file table", node1, old, "node-1", http.StatusNotFound},
		{"no node", node1, certified, "", http.StatusBadRequest},
		{"not a digest", node1, "sha256:AB", "node-1", http.StatusBadRequest},
	} {
		if code, body := call(c.token, c.digest, c.node); code != c.want || strings.Contains(body, "/bin/app") {
			t.Errorf("%s: %d %s, want %d and no file table", c.name, code, body, c.want)
		}
	}
}

// TestAllowlistOfAClaimedDigest: without a cluster (no UseNodeImages),
// what stops a node from reading the file table of a digest it does not
// run and that is not certified is its heartbeat alone. node-2's token
// cannot read it (403), until node-2's heartbeat claims a container of
// it: then it can. The server has nothing else to check the claim against
// (docs/runtime-allowlists.md, "The attacker"); what the claim buys is the
// image's executable paths and content digests, entrypoint, cmd and env:
// what pulling the image gives. The node cannot list digests to claim
// (TestNodeBoundTokenOnlyAgentRoutes). With a cluster the kubelet's word
// is needed too (TestAllowlistClaimCorroborated in internal/server).
func TestAllowlistOfAClaimedDigest(t *testing.T) {
	h, sti := newTestAPI(t)
	st := sti.(*store.Store)
	ctx := t.Context()
	digest := "sha256:" + strings.Repeat("e", 64)
	scanned(t, st, digest)
	_, node2, _ := st.CreateToken(ctx, NodeTokenPrefix+"node-2", store.RoleOperator)
	do := caller(h, node2)
	if code, _ := do("GET", agentproto.AllowlistPath+digest+"?node=node-2", nil); code != http.StatusForbidden {
		t.Fatalf("before any claim: %d, want 403", code)
	}
	hb := agentproto.Heartbeat{Node: "node-2", Mode: "detect", State: agentproto.StateDetectingOnly,
		Containers: []agentproto.Container{{ID: "forged", Namespace: "default", Image: digest}}}
	if code, body := do("POST", agentproto.HeartbeatPath, hb); code != http.StatusOK {
		t.Fatalf("heartbeat: %d %s", code, body)
	}
	if code, body := do("GET", agentproto.AllowlistPath+digest+"?node=node-2", nil); code != http.StatusOK || !strings.Contains(body, "/bin/app") {
		t.Errorf("after the claim: %d %s (the claim is enough: if this changed, update docs/runtime-allowlists.md)", code, body)
	}
}

// TestAllowlistClusterDown: with a cluster that does not answer, a claimed
// uncertified digest is 503 (ask again), never served on the claim alone;
// a certified one does not need the cluster.
func TestAllowlistClusterDown(t *testing.T) {
	h, sti := newTestAPI(t)
	st := sti.(*store.Store)
	ctx := t.Context()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close() // nothing listens there now
	kcfg := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kcfg, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://`+ln.Addr().String()+`", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600)
	kc, err := kube.Load(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	h.UseNodeImages(&kube.NodePods{Client: kc})
	claimed, certified := "sha256:"+strings.Repeat("e", 64), "sha256:"+strings.Repeat("f", 64)
	scanned(t, st, claimed)
	scanned(t, st, certified)
	if err := st.SetCertification(ctx, certified, store.Certified, "test"); err != nil {
		t.Fatal(err)
	}
	_, node, _ := st.CreateToken(ctx, NodeTokenPrefix+"node-1", store.RoleOperator)
	do := caller(h, node)
	hb := agentproto.Heartbeat{Node: "node-1", Mode: "detect", State: agentproto.StateDetectingOnly,
		Containers: []agentproto.Container{{ID: "c1", Namespace: "default", Image: claimed}}}
	if code, body := do("POST", agentproto.HeartbeatPath, hb); code != http.StatusOK {
		t.Fatalf("heartbeat: %d %s", code, body)
	}
	if code, body := do("GET", agentproto.AllowlistPath+claimed+"?node=node-1", nil); code != http.StatusServiceUnavailable || strings.Contains(body, "/bin/app") {
		t.Errorf("claimed, the cluster down: %d %s, want 503 and no file table", code, body)
	}
	if code, body := do("GET", agentproto.AllowlistPath+certified+"?node=node-1", nil); code != http.StatusOK {
		t.Errorf("certified, the cluster down: %d %s", code, body)
	}
}

// scanned stores digest as a scan would: the image, an empty inventory
// and a file table of /bin/app.
func scanned(t *testing.T, st *store.Store, digest string) {
	t.Helper()
	ctx := t.Context()
	if err := st.PutImage(ctx, store.Image{Digest: digest, Repository: "r/app"}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutInventory(ctx, digest, &sbom.SBOM{Schema: sbom.SchemaVersion}, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.PutFileTable(ctx, digest, []sbom.File{{Path: "/bin/app", Type: "file", Mode: "0755", Digest: "sha256:" + strings.Repeat("1", 64)}}); err != nil {
		t.Fatal(err)
	}
}

// caller calls h with token, body as JSON.
func caller(h *Handler, token string) func(method, path string, body any) (int, string) {
	return func(method, path string, body any) (int, string) {
		b, _ := json.Marshal(body)
		req := httptest.NewRequest(method, path, strings.NewReader(string(b)))
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
}
