package image

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
)

// ErrPanic reports that reading an image panicked: a bug that a hostile
// image found. The scan fails, with the image named; the process goes on
// (a server that died on it would die again on every retry of the job).
var ErrPanic = errors.New("reading the image panicked (a bug: please report it with the image)")

// recovered turns a panic of the calling goroutine into *err; deferred at
// the top of Open and of every layer's goroutine.
func recovered(err *error, what string) {
	if p := recover(); p != nil {
		slog.Error("reading an image panicked", "what", what, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		*err = fmt.Errorf("%s: %w: %v", what, ErrPanic, p)
	}
}
