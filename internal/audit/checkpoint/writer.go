package checkpoint

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
)

// Sink keeps checkpoints.
type Sink interface {
	// Name says where, for logs: "file /var/log/bulwark/checkpoints".
	Name() string
	// Put keeps c. It may be called again with a checkpoint of the same
	// seq (after a restart); a sink that cannot keep two may skip it.
	Put(ctx context.Context, c audit.Checkpoint) error
}

// Writer signs the audit log's head and puts the checkpoint to its sinks.
type Writer struct {
	DB  audit.Querier
	Key ed25519.PrivateKey
	// Sinks get every checkpoint; one failing does not hold back the
	// others, and is retried at the next tick with the newest head.
	Sinks []Sink
	// Interval is how often Run looks at the head; it writes only when the
	// head moved since a sink last got a checkpoint.
	Interval time.Duration
	Log      *slog.Logger // nil: slog.Default()
	Now      func() time.Time

	mu   sync.Mutex
	have map[string]int64 // sink name -> seq of the last checkpoint it took
}

// Run writes a checkpoint at once (the genesis checkpoint, seq 0, for an
// empty log) and then every Interval while the log moves, until ctx is
// done; then it returns nil. Failures are logged and retried, never fatal:
// the audit log itself does not depend on its checkpoints. Run does not
// write on return: call Checkpoint once every appender has stopped, so the
// last checkpoint covers the last entry.
func (w *Writer) Run(ctx context.Context) error {
	if w.Interval <= 0 {
		return errors.New("running the checkpoint writer: no interval")
	}
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		if err := w.Checkpoint(ctx); err != nil && ctx.Err() == nil {
			w.log().Warn("writing an audit checkpoint", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Checkpoint signs the log's current head and puts it to every sink that
// has not taken that seq yet. The error joins the failures of the sinks.
func (w *Writer) Checkpoint(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	seq, sum, err := audit.Head(ctx, w.DB)
	if err != nil {
		return err
	}
	if w.have == nil {
		w.have = map[string]int64{}
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	var c *audit.Checkpoint
	var errs []error
	for _, s := range w.Sinks {
		if got, ok := w.have[s.Name()]; ok && got == seq {
			continue
		}
		if c == nil {
			cp := audit.SignCheckpoint(w.Key, seq, sum, now())
			c = &cp
		}
		if err := s.Put(ctx, *c); err != nil {
			errs = append(errs, fmt.Errorf("putting checkpoint %d to %s: %w", seq, s.Name(), err))
			continue
		}
		w.have[s.Name()] = seq
		w.log().Debug("audit checkpoint written", "seq", seq, "sink", s.Name())
	}
	return errors.Join(errs...)
}

func (w *Writer) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.Default()
}

// File is the append-only checkpoint log at Path (audit.AppendCheckpoint).
type File struct{ Path string }

// Name implements Sink.
func (f File) Name() string { return "file " + f.Path }

// Put implements Sink.
func (f File) Put(_ context.Context, c audit.Checkpoint) error {
	return audit.AppendCheckpoint(f.Path, c)
}
