package layerfs

import (
	"io"
	"io/fs"
)

// Inspector reads files as a streaming pass goes over them, beside the
// Selector, for results that need content no reader keeps (the secret
// scanner reads every text file of every layer). What it concludes about a
// layer is kept with the layer's index (Indexed.Notes, Layer.Notes) and
// stored with it in a results cache, so a layer read once is not read again
// for it.
type Inspector interface {
	// Layer starts the inspection of one layer.
	Layer() LayerInspector
}

// LayerInspector inspects the regular files of one layer, one after the
// other in tar order (sparse entries and whiteout markers excluded).
type LayerInspector interface {
	// File is called for every regular file with its first bytes (up to
	// 512); it returns where the file's whole content, those bytes
	// included, is written, or nil when it does not read the file. Writes
	// must not fail: an inspector that has seen enough ignores the rest.
	// Close is called when the content is complete, never for a file whose
	// content ended early (the pass fails then).
	File(p string, mode fs.FileMode, size int64, head []byte) io.WriteCloser
	// Done is called after the last file; its result becomes the layer's
	// Notes. It must not be nil, so that a layer that was inspected can be
	// told from one that was not.
	Done() ([]byte, error)
}
