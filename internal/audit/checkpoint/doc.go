// Package checkpoint writes the audit log's signed checkpoints
// (audit.Checkpoint) to places the database's writer cannot rewrite, and
// reads them back for verification.
//
// A Writer is a server task: at start and every interval in which the log
// moved, it signs the log's head and puts the checkpoint to each Sink:
//
//   - File: an append-only checkpoint log (JSON lines), best kept on
//     another mount or host, or made append-only (chattr +a);
//   - Webhook: a POST of the checkpoint, HMAC-signed as internal/notify
//     signs its deliveries, to a receiver that keeps it (a log collector);
//   - OCI: an artifact pushed to a registry repository, one immutable tag
//     per key and seq, next to the images.
//
// In the server:
//
//	w := &checkpoint.Writer{DB: st.DB(), Key: key, Sinks: []checkpoint.Sink{checkpoint.File{Path: p}}, Interval: time.Minute}
//	g.Go(func() error { return w.Run(ctx) })
//	// ... once every appender has stopped:
//	err := w.Checkpoint(context.WithoutCancel(ctx))
//
// Where the checkpoints go is configured at server start (flags), never in
// the database: whoever writes the database must not be able to redirect
// them.
package checkpoint
