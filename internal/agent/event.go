package agent

import (
	"context"
	"log/slog"
	"time"
)

// Verdict is what became of one exec.
type Verdict string

// The verdicts.
const (
	// VerdictRefused: the exec failed with EPERM (prevent).
	VerdictRefused Verdict = "refused"
	// VerdictReported: the exec ran and was reported (detect).
	VerdictReported Verdict = "reported"
)

// Reasons an exec is drift.
const (
	// ReasonNotInImage: the content is not an executable of the image (a
	// new file, or an image file modified after start).
	ReasonNotInImage = "not-in-image"
	// ReasonUnreadable: the file could not be identified or hashed.
	ReasonUnreadable = "unreadable"
)

// Event is one drifted exec.
type Event struct {
	Time      time.Time
	Verdict   Verdict
	Reason    string
	PID       int
	Path      string // as the agent sees it (the container's root is /proc/PID/root)
	Digest    string // of the content that was to run
	Container string
	Namespace string
	Image     string // manifest digest
	Err       string `json:",omitempty"`
	// Tree is the exec's caller and its ancestors, nearest first
	// ("42 sh < 7 probe"; proctree.go).
	Tree string `json:",omitempty"`
}

// logReport is the default reporter: one structured log line per event.
func logReport(log *slog.Logger) func(Event) {
	return func(e Event) {
		log.LogAttrs(context.Background(), slog.LevelWarn, "drift",
			slog.String("verdict", string(e.Verdict)), slog.String("reason", e.Reason),
			slog.Int("pid", e.PID), slog.String("path", e.Path), slog.String("digest", e.Digest),
			slog.String("container", e.Container), slog.String("namespace", e.Namespace),
			slog.String("image", e.Image), slog.String("error", e.Err))
	}
}
