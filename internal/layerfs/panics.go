package layerfs

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
)

// ErrPanic reports that reading an image panicked: a bug that a hostile
// image found. The read fails with the layer named; the process goes on
// (a server that died on it would die again on every retry of its job).
// internal/image and internal/catalog wrap the same value.
var ErrPanic = errors.New("reading the image panicked (a bug: please report it with the image)")

// Recovered turns a panic of the calling goroutine into *err; deferred at
// the top of every goroutine that reads an image or a layer (here and in
// internal/image).
func Recovered(err *error, what string) {
	if p := recover(); p != nil {
		slog.Error("reading an image panicked", "what", what, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		*err = fmt.Errorf("%s: %w: %v", what, ErrPanic, p)
	}
}
