package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// TestAgentHostInventory: an operator's host inventory is accepted, kept
// per node, handed to the fleet sink and audited with counts; a viewer
// gets 403, no token 401; hostile inventories (bad digests, too many
// packages, NUL bytes, empty versions) are 400 and change nothing.
func TestAgentHostInventory(t *testing.T) {
	h, st := newTestAPI(t)
	ctx := t.Context()
	s := st.(*store.Store)
	_, op, _ := s.CreateToken(ctx, "agent", store.RoleOperator)
	_, viewer, _ := s.CreateToken(ctx, "v", store.RoleViewer)
	var sunk []agentproto.HostInventory
	h.UseHostInventory(func(hi agentproto.HostInventory) { sunk = append(sunk, hi) })
	post := func(token string, body any) int {
		b, _ := json.Marshal(body)
		req := httptest.NewRequest(http.MethodPost, "/api/v1/agent/host-inventory", bytes.NewReader(b))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	digest := "sha256:" + strings.Repeat("ab", 32)
	good := agentproto.HostInventory{Node: "node-1", Generated: time.Now().UTC(), Kernel: "6.18.0",
		Distro:   &agentproto.Distro{ID: "debian", VersionID: "12"},
		Packages: []agentproto.Package{{Type: "deb", Name: "openssl", Version: "3.0.11-1", Source: "openssl", SourceVersion: "3.0.11-1"}},
		Running:  map[string][]string{digest: {"c1", "c2"}}}
	if code := post(op, good); code != http.StatusOK {
		t.Fatalf("operator: %d", code)
	}
	hi, ok := h.HostInventory("node-1")
	if !ok || len(hi.Packages) != 1 || len(hi.Running[digest]) != 2 || len(sunk) != 1 {
		t.Fatalf("kept %+v (%v), sunk %d", hi, ok, len(sunk))
	}
	if code := post(viewer, good); code != http.StatusForbidden {
		t.Fatalf("viewer: %d, want 403", code)
	}
	if code := post("", good); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", code)
	}
	many := good
	many.Node = "node-2"
	many.Packages = make([]agentproto.Package, agentproto.MaxPackages+1)
	for i := range many.Packages {
		many.Packages[i] = agentproto.Package{Type: "deb", Name: "p", Version: "1"}
	}
	for name, bad := range map[string]agentproto.HostInventory{
		"bad digest":    {Node: "node-2", Generated: good.Generated, Running: map[string][]string{"sha256:../../x": {"c"}}},
		"upper digest":  {Node: "node-2", Generated: good.Generated, Running: map[string][]string{strings.ToUpper(digest): {"c"}}},
		"no containers": {Node: "node-2", Generated: good.Generated, Running: map[string][]string{digest: {}}},
		"nul":           {Node: "node-2", Generated: good.Generated, Packages: []agentproto.Package{{Type: "deb", Name: "a\x00b", Version: "1"}}},
		"no version":    {Node: "node-2", Generated: good.Generated, Packages: []agentproto.Package{{Type: "deb", Name: "a"}}},
		"no time":       {Node: "node-2"},
		"space in node": {Node: "node 2", Generated: good.Generated},
		"too many":      many,
	} {
		if code := post(op, bad); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, code)
		}
	}
	if _, ok := h.HostInventory("node-2"); ok || len(sunk) != 1 {
		t.Fatalf("a refused inventory was kept (sunk %d)", len(sunk))
	}
	recs, err := s.AuditPage(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range recs {
		if r.Action == "node.host-inventory" && r.Object == "node:node-1" {
			found = strings.Contains(string(r.After), `"packages":1`) && !strings.Contains(string(r.After), "openssl")
		}
	}
	if !found {
		t.Fatalf("no node.host-inventory audit entry with counts only: %+v", recs)
	}
}
