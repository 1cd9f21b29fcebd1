package catalog

import (
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/bulwark-sec/bulwark/internal/image"
	"github.com/bulwark-sec/bulwark/internal/layerfs"
)

// PanicError is a cataloger that panicked on image content: a parser bug
// that a crafted image found. The scan fails with it, naming the
// cataloger and the file it was reading (the layer that file comes from);
// the process goes on, and so do other scans. It wraps image.ErrPanic, so
// errors.Is(err, image.ErrPanic) holds for a panic anywhere in a scan.
type PanicError struct {
	Cataloger string
	// Path and Layer are the file being read and its layer's diffID; ""
	// when the panic came from outside any one file's reading.
	Path, Layer string
	Value       any // what was passed to panic
}

func (e *PanicError) Error() string {
	where := ""
	if e.Path != "" {
		where = fmt.Sprintf(" reading %s (layer %s)", e.Path, e.Layer)
	}
	return fmt.Sprintf("cataloger %s%s: %v: %v", e.Cataloger, where, image.ErrPanic, e.Value)
}

func (e *PanicError) Unwrap() error { return image.ErrPanic }

// recovered turns a panic of the calling goroutine into *err, a
// *PanicError naming cataloger and, when n is not nil, the file n of in.
// Deferred at the top of every goroutine that runs a cataloger and around
// each file a built-in cataloger reads.
func recovered(err *error, cataloger string, in *Input, n *layerfs.Node) {
	p := recover()
	if p == nil {
		return
	}
	e := &PanicError{Cataloger: cataloger, Value: p}
	if n != nil {
		e.Path, e.Layer = n.Path, in.FS.LayerID(n.Layer)
	}
	slog.Error("a cataloger panicked", "cataloger", cataloger, "path", e.Path, "layer", e.Layer,
		"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	*err = e
}
