package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/audit/checkpoint"
	"github.com/bulwark-sec/bulwark/internal/seal"
)

// DefaultCheckpointInterval is how often the audit log's head is
// checkpointed when it moved.
const DefaultCheckpointInterval = time.Minute

// CheckpointConfig says how the audit log is checkpointed: signed with a
// key that is not in the database, exported where the database's writer
// cannot rewrite it. Configured at start, never through the API.
type CheckpointConfig struct {
	// Interval is how often the log's head is checkpointed when it moved
	// (a checkpoint is also written at start and at shutdown); zero is
	// DefaultCheckpointInterval.
	Interval time.Duration
	// Key is the signing key's file, sealed with the secret key; "" is
	// CheckpointKeyPath(DataDir). Created on first start with its public
	// key next to it (audit.PublicKeyPath).
	Key string
	// Log is the append-only checkpoint log; "" is
	// CheckpointLogPath(DataDir).
	Log string
	// Webhook, when set, receives every checkpoint (POST), signed with
	// WebhookSecret (HMAC-SHA256, as notifications are) when that is set.
	Webhook       string
	WebhookSecret []byte
	// Repository, when set, is an OCI repository every checkpoint is
	// pushed to as an artifact; credentials are those of the registered
	// registries, then the Docker config.
	Repository string
}

// CheckpointKeyPath is the default checkpoint key file in dataDir.
func CheckpointKeyPath(dataDir string) string {
	return filepath.Join(dataDir, "audit-checkpoint.key")
}

// CheckpointLogPath is the default checkpoint log in dataDir.
func CheckpointLogPath(dataDir string) string {
	return filepath.Join(dataDir, "audit-checkpoints.jsonl")
}

func (c *CheckpointConfig) fill(dataDir string) {
	if c.Interval <= 0 {
		c.Interval = DefaultCheckpointInterval
	}
	if c.Key == "" {
		c.Key = CheckpointKeyPath(dataDir)
	}
	if c.Log == "" {
		c.Log = CheckpointLogPath(dataDir)
	}
}

// NewCheckpointWriter returns the checkpoint task of the audit log in db,
// with the key (created when missing) sealed by sk, writing to the sinks
// of cfg.Checkpoints. kc resolves the OCI repository's credentials (nil:
// the Docker config only). cfg must be filled (Run does it; the CLI passes
// DataDir and the paths).
func NewCheckpointWriter(cfg Config, db audit.Querier, sk *seal.Key, kc authn.Keychain, log *slog.Logger) (*checkpoint.Writer, error) {
	cc := cfg.Checkpoints
	cc.fill(cfg.DataDir)
	key, err := audit.CheckpointKey(cc.Key, sk)
	if err != nil {
		return nil, err
	}
	sinks := []checkpoint.Sink{checkpoint.File{Path: cc.Log}}
	if cc.Webhook != "" {
		sinks = append(sinks, checkpoint.Webhook{URL: cc.Webhook, Secret: cc.WebhookSecret})
	}
	if cc.Repository != "" {
		var opts []name.Option
		if cfg.Insecure {
			opts = append(opts, name.Insecure)
		}
		repo, err := name.NewRepository(cc.Repository, opts...)
		if err != nil {
			return nil, fmt.Errorf("parsing the checkpoint repository %q: %w", cc.Repository, err)
		}
		var chain authn.Keychain = authn.DefaultKeychain
		if kc != nil {
			chain = authn.NewMultiKeychain(kc, authn.DefaultKeychain)
		}
		sinks = append(sinks, checkpoint.OCI{Repository: repo, Options: []remote.Option{remote.WithAuthFromKeychain(chain)}})
	}
	if log == nil {
		log = slog.Default()
	}
	return &checkpoint.Writer{DB: db, Key: key, Sinks: sinks, Interval: cc.Interval, Log: log.With("task", "audit-checkpoint")}, nil
}

// finalCheckpoint writes the shutdown checkpoint once every task stopped,
// within timeout.
func finalCheckpoint(ctx context.Context, w *checkpoint.Writer, timeout time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := w.Checkpoint(ctx); err != nil {
		log.Warn("writing the shutdown audit checkpoint", "err", err)
	}
}
