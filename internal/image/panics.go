package image

import "github.com/bulwark-sec/bulwark/internal/layerfs"

// ErrPanic reports that reading an image panicked: a bug that a hostile
// image found. The scan fails, with the image named; the process goes on
// (a server that died on it would die again on every retry of the job).
// It is layerfs's value: a panic recovered in a layer's index or hash
// goroutine and one recovered here are the same error to errors.Is.
// Goroutines that read an image defer layerfs.Recovered at their top.
var ErrPanic = layerfs.ErrPanic
