package server

import (
	"context"
	"fmt"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/image"
	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// fileTables stores the allowlist file table of a scanned digest
// (store.Store); agents ask for it (GET /api/v1/agent/allowlists/{digest}).
type fileTables interface {
	PutFileTable(ctx context.Context, digest string, files []sbom.File) error
}

// hashExecutables gives every executable, ELF file, script and shared
// library of img its content digest, for the file table a scan keeps.
func hashExecutables(ctx context.Context, img *image.Image) error {
	if err := img.FS.FillDigests(ctx, layerfs.DigestExecutables); err != nil {
		return fmt.Errorf("hashing the executables of %s: %w", img.Source.Name, err)
	}
	return nil
}

// takeFileTable removes the file table from inv (the stored inventory
// stays as it was: re-evaluation decodes it) and returns the part of it
// an allowlist is made of.
func takeFileTable(inv *sbom.SBOM) []sbom.File {
	files := allowlist.Table(inv.Files)
	inv.Files = nil
	return files
}

// maxFileTable is the largest file table kept: an agent refuses a larger
// answer whole (agentproto.MaxAllowlistFiles), so keeping one would only
// have every node that adopts the digest download and decode hundreds of
// megabytes to refuse them. A variable for tests.
var maxFileTable = agentproto.MaxAllowlistFiles

// storeFileTable keeps digest's allowlist file table, when the store can
// and agents would take it; a larger one is not kept (logged), the route
// answers 404 and agents make their list on the node.
func (w *worker) storeFileTable(ctx context.Context, digest string, files []sbom.File) error {
	ft, ok := w.store.(fileTables)
	if !ok {
		return nil
	}
	if len(files) > maxFileTable {
		w.log.Warn("not keeping the allowlist file table: more entries than agents take", "digest", digest,
			"entries", len(files), "max", maxFileTable)
		return nil
	}
	return ft.PutFileTable(ctx, digest, files)
}
