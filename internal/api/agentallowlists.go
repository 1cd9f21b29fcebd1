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

// NodeImages is the cluster's word on what a node runs (kube.NodePods):
// whether a pod scheduled on node has a container its kubelet reports
// running digest, or pinned to it.
type NodeImages interface {
	Runs(ctx context.Context, node, digest string) (bool, error)
}

// UseNodeImages has the allowlist route corroborate a node's claim that
// it runs an uncertified digest with the cluster's word. Without it the
// heartbeat's claim is enough (a server that knows no cluster).
func (h *Handler) UseNodeImages(n NodeImages) { h.nodeImages = n }

// agentAllowlist is GET /api/v1/agent/allowlists/{digest}?node=NAME: the
// allowlist of a digest from the server's own scan (its executables' file
// table, the config's entrypoint, cmd and env), for the agent of node NAME
// to enforce. A node-bound token speaks for its node only (nodeBound), and
// any caller gets only a digest that is certified (admission admits it,
// so any node may be told to run it) or that the node's last heartbeat
// reports running and, when the server knows the cluster (UseNodeImages),
// a pod of the node runs in the kubelet's or the pod spec's word: a
// stolen agent token's heartbeat alone no longer buys a file table. Anything else, an unknown digest among them, is 403:
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
	if cert.Status != store.Certified {
		if err := h.nodeRuns(ctx, node, digest); err != nil {
			return err
		}
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

// nodeRuns refuses (403) a digest node's heartbeat does not report
// running or, with a cluster, no pod of node runs. The answer and the
// cluster's question do not depend on whether the server knows digest,
// so a node cannot probe which digests exist; a cluster that does not
// answer is 503.
func (h *Handler) nodeRuns(ctx context.Context, node, digest string) error {
	if len(h.runningFleet().Workloads(fleet.Filter{Node: node, Image: digest})) == 0 {
		return errorf(http.StatusForbidden, nil, "%s is not certified and node %q reports no container running it", digest, node)
	}
	if h.nodeImages == nil {
		return nil
	}
	runs, err := h.nodeImages.Runs(ctx, node, digest)
	if err != nil {
		return errorf(http.StatusServiceUnavailable, err, "the cluster did not say whether node %q runs %s: try again", node, digest)
	}
	if !runs {
		return errorf(http.StatusForbidden, nil, "%s is not certified and no pod of node %q runs it in its kubelet's word", digest, node)
	}
	return nil
}
