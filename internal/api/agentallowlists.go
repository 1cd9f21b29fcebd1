package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// fileTabler reads the allowlist file table a scan kept (store.Store).
type fileTabler interface {
	FileTable(ctx context.Context, digest string) ([]sbom.File, error)
}

// agentAllowlist is GET /api/v1/agent/allowlists/{digest}?node=NAME: the
// allowlist of a digest from the server's own scan (its executables' file
// table, the config's entrypoint, cmd and env), for the agent of node NAME
// to enforce. A node-bound token speaks for its node only (nodeBound), and
// any caller gets only a digest that is certified (admission admits it,
// so any node may be told to run it) or that the node's last heartbeat
// reports running. Anything else, an unknown digest among them, is 403:
// a node cannot learn which other digests the server knows. What a node
// can read is what a viewer can (an image's paths and content digests):
// low sensitivity, but scoped to what the node runs or may run.
func (h *Handler) agentAllowlist(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	digest, node := r.PathValue("digest"), r.URL.Query().Get("node")
	if !agentproto.ValidDigest(digest) {
		return errorf(http.StatusBadRequest, nil, "digest %.80q: want sha256: and 64 lowercase hex digits", digest)
	}
	if node == "" || len(node) > agentproto.MaxName {
		return errorf(http.StatusBadRequest, nil, "the node parameter is required (1-%d bytes)", agentproto.MaxName)
	}
	if err := h.nodeBound(ctx, node); err != nil {
		return err
	}
	ft, ok := h.store.(fileTabler)
	if !ok {
		return errorf(http.StatusServiceUnavailable, nil, "this store keeps no file tables")
	}
	cert, err := h.store.Certification(ctx, digest)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	running := len(h.runningFleet().Workloads(fleet.Filter{Node: node, Image: digest})) > 0
	if cert.Status != store.Certified && !running {
		return errorf(http.StatusForbidden, nil, "%s is not certified and node %q reports no container running it", digest, node)
	}
	img, err := h.store.Image(ctx, digest)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, err, "%s was never scanned", digest)
	}
	if err != nil {
		return err
	}
	files, err := ft.FileTable(ctx, digest)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, err, "%s has no stored file table (scanned before file tables were kept: scan it again)", digest)
	}
	if err != nil {
		return err
	}
	out := agentproto.Allowlist{Image: digest, Certification: cert.Status, Files: files}
	if out.Files == nil {
		out.Files = []sbom.File{}
	}
	if len(img.Config) > 0 {
		var cfg struct {
			Config struct{ Entrypoint, Cmd, Env []string } `json:"config"`
		}
		if err := json.Unmarshal(img.Config, &cfg); err != nil {
			return errorf(http.StatusInternalServerError, err, "reading the stored config of %s", digest)
		}
		out.Entrypoint, out.Cmd, out.Env = cfg.Config.Entrypoint, cfg.Config.Cmd, cfg.Config.Env
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
