package cli

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/audit/checkpoint"
	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// checkpointOptions are the --audit-checkpoint-* flags of `bulwark server`
// (all of them) and `server token create` (key and log).
type checkpointOptions struct {
	key, log, webhook, secretFile, repository string
	interval                                  time.Duration
}

func (o *checkpointOptions) addFileFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.key, "audit-checkpoint-key", "", "audit checkpoint signing key, sealed with the secret key; created on first use with its public key next to it as .pub (default DATA_DIR/audit-checkpoint.key)")
	cmd.Flags().StringVar(&o.log, "audit-checkpoint-log", "", "append-only log the signed audit checkpoints are written to; keep it where the database's writer cannot rewrite it (default DATA_DIR/audit-checkpoints.jsonl)")
}

func (o *checkpointOptions) addExportFlags(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&o.interval, "audit-checkpoint-interval", server.DefaultCheckpointInterval, "how often the audit log is checkpointed when it changed (also at start and at shutdown)")
	cmd.Flags().StringVar(&o.webhook, "audit-checkpoint-webhook", "", "URL every audit checkpoint is POSTed to")
	cmd.Flags().StringVar(&o.secretFile, "audit-checkpoint-webhook-secret-file", "", "file holding the HMAC secret the checkpoint webhook's deliveries are signed with (X-Bulwark-Signature)")
	cmd.Flags().StringVar(&o.repository, "audit-checkpoint-repository", "", "OCI repository every audit checkpoint is pushed to as an artifact (tag ckpt-KEYID-SEQ)")
}

// config is the server's CheckpointConfig of the flags.
func (o *checkpointOptions) config() (server.CheckpointConfig, error) {
	c := server.CheckpointConfig{Interval: o.interval, Key: o.key, Log: o.log, Webhook: o.webhook, Repository: o.repository}
	if o.interval < 0 {
		return c, fmt.Errorf("--audit-checkpoint-interval %s is negative", o.interval)
	}
	if o.secretFile != "" {
		if o.webhook == "" {
			return c, errors.New("--audit-checkpoint-webhook-secret-file needs --audit-checkpoint-webhook")
		}
		b, err := os.ReadFile(o.secretFile)
		if err != nil {
			return c, fmt.Errorf("reading the checkpoint webhook secret: %w", err)
		}
		if c.WebhookSecret = []byte(strings.TrimSpace(string(b))); len(c.WebhookSecret) == 0 {
			return c, fmt.Errorf("reading the checkpoint webhook secret: %q is empty", o.secretFile)
		}
	}
	return c, nil
}

// checkpointAfterCLI writes a checkpoint of the log in st after a CLI
// change to it (a token created before the server runs), to the
// checkpoint log only.
func checkpointAfterCLI(cmd *cobra.Command, st *store.Store, dir, secretKeyFile string, o checkpointOptions) error {
	sk, err := seal.Load(secretKeyFile, filepath.Join(dir, "secret.key"))
	if err != nil {
		return err
	}
	cc, err := o.config()
	if err != nil {
		return err
	}
	w, err := server.NewCheckpointWriter(server.Config{DataDir: dir, Checkpoints: cc}, st.DB(), sk, nil, nil)
	if err != nil {
		return err
	}
	return w.Checkpoint(cmd.Context())
}

// newAuditCmd is `bulwark audit verify`.
func newAuditCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Check the server's audit log",
		Args:  cobra.NoArgs,
	}
	var (
		data                                 dataDirOption
		logPath, pubPath, repository         string
		allowMissingAnchor, allowMissingSign bool
		insecure                             bool
	)
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Verify the audit log against its anchor and signed checkpoints (exit 1 when it fails)",
		Long: `Recompute the hash chain of the audit log and check it against the evidence
kept outside the database: the anchor file (the newest entry, written after
every commit) and the signed checkpoints (Ed25519 over an entry's seq and
hash, written by the server every --audit-checkpoint-interval and at
shutdown) from the checkpoint log and, with --checkpoint-repository, the
newest one pushed to that OCI repository.

It fails on the first edited, missing or reordered entry; on a checkpoint or
anchor the log no longer matches (the history was rewritten: edited and
re-chained, or entries deleted and renumbered) or that vouches for entries
beyond the log's end (truncated); on a checkpoint that does not verify with
the public key (forged); and when there is no anchor file or no checkpoint
at all, unless waived with --allow-missing-anchor or
--allow-missing-checkpoint.

Pin the public key (--public-key) to a copy kept away from the data
directory: whoever can replace it there can sign checkpoints of their own.

Exit status: 0 when the log verifies, 1 when it fails verification, 2 on
error (the log or a checkpoint source cannot be read).`,
		Example: `  bulwark audit verify --data-dir /var/lib/bulwark --public-key /etc/bulwark/audit-checkpoint.pub
  bulwark audit verify --checkpoint-repository registry.example/bulwark/audit --allow-missing-anchor`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := data.path()
			if err != nil {
				return err
			}
			dbPath := server.DBPath(dir)
			if data.database == "" {
				if _, err := os.Stat(dbPath); err != nil {
					return fmt.Errorf("opening the audit log: %w", err)
				}
			}
			ev := audit.Evidence{AllowMissingAnchor: allowMissingAnchor, AllowMissingCheckpoint: allowMissingSign}
			switch a, err := audit.ReadAnchor(audit.AnchorPath(dbPath)); {
			case err == nil:
				ev.Anchor = &a
			case !errors.Is(err, fs.ErrNotExist):
				return err
			}
			if pubPath == "" {
				pubPath = audit.PublicKeyPath(server.CheckpointKeyPath(dir))
			}
			switch pub, err := audit.ReadPublicKey(pubPath); {
			case err == nil:
				ev.PublicKey = pub
			case !errors.Is(err, fs.ErrNotExist) || cmd.Flags().Changed("public-key"):
				return err
			}
			if logPath == "" {
				logPath = server.CheckpointLogPath(dir)
			}
			out := cmd.OutOrStdout()
			cps, err := audit.ReadCheckpoints(logPath)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return brokenEvidence(out, err)
			}
			ev.Checkpoints = cps
			if repository != "" {
				more, err := readOCICheckpoints(cmd, repository, ev.PublicKey, insecure)
				if err != nil {
					return brokenEvidence(out, err)
				}
				ev.Checkpoints = append(ev.Checkpoints, more...)
			}
			st, err := server.OpenStoreAt(cmd.Context(), dir, data.database)
			if err != nil {
				return err
			}
			defer st.Close()
			rep, err := audit.VerifyEvidence(cmd.Context(), st.DB(), ev)
			if err != nil {
				return err
			}
			if !rep.OK {
				fmt.Fprintf(out, "audit log BROKEN at entry %d (%s): %s\n", rep.BrokenSeq, rep.Problem, rep.Reason)
				return &exitError{code: ExitFindings, err: fmt.Errorf("audit log broken at entry %d: %s", rep.BrokenSeq, rep.Problem)}
			}
			printVerified(out, rep, len(ev.Checkpoints))
			return nil
		},
	}
	data.addFlags(verify)
	f := verify.Flags()
	f.StringVar(&logPath, "checkpoint-log", "", "checkpoint log to check against (default DATA_DIR/audit-checkpoints.jsonl)")
	f.StringVar(&repository, "checkpoint-repository", "", "OCI repository whose newest checkpoint (of the public key) is checked too")
	f.StringVar(&pubPath, "public-key", "", "checkpoint public key, PEM (default DATA_DIR/audit-checkpoint.pub; pin a copy kept elsewhere)")
	f.BoolVar(&allowMissingAnchor, "allow-missing-anchor", false, "do not fail when there is no anchor file (entries removed from the end then go unnoticed after the last checkpoint)")
	f.BoolVar(&allowMissingSign, "allow-missing-checkpoint", false, "do not fail when there is no signed checkpoint (a rewritten history then verifies)")
	f.BoolVar(&insecure, "insecure", false, "plain HTTP for --checkpoint-repository")
	cmd.AddCommand(verify)
	return cmd
}

// readOCICheckpoints reads the newest checkpoint of pub in repository.
func readOCICheckpoints(cmd *cobra.Command, repository string, pub ed25519.PublicKey, insecure bool) ([]audit.Checkpoint, error) {
	if len(pub) == 0 {
		return nil, errors.New("--checkpoint-repository needs the checkpoint public key (--public-key)")
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	repo, err := name.NewRepository(repository, opts...)
	if err != nil {
		return nil, fmt.Errorf("parsing --checkpoint-repository %q: %w", repository, err)
	}
	return checkpoint.ReadOCI(cmd.Context(), repo, audit.KeyID(pub), remote.WithAuthFromKeychain(authn.DefaultKeychain))
}

// brokenEvidence is the outcome of a checkpoint source that does not read
// as checkpoints: a verification failure (exit 1) when it is malformed,
// else an error.
func brokenEvidence(out io.Writer, err error) error {
	if !errors.Is(err, audit.ErrMalformedCheckpoint) {
		return err
	}
	fmt.Fprintf(out, "audit log BROKEN (%s): %v\n", audit.Forged, err)
	return &exitError{code: ExitFindings, err: fmt.Errorf("audit checkpoints malformed: %w", err)}
}

func printVerified(out io.Writer, rep audit.Report, checkpoints int) {
	entries := fmt.Sprintf("%d entries", rep.Entries)
	if rep.Entries == 1 {
		entries = "1 entry"
	}
	fmt.Fprintf(out, "audit log OK: %s, last entry %d, hash %x\n", entries, rep.LastSeq, rep.LastHash)
	if c := rep.Checkpoint; c != nil {
		fmt.Fprintf(out, "signed checkpoint: entry %d at %s, key %s (%d checked); %d entries after it\n",
			c.Seq, c.Time.Format(time.RFC3339), c.KeyID, checkpoints, rep.LastSeq-c.Seq)
	} else {
		fmt.Fprintln(out, "no signed checkpoint (waived): a rewritten history would verify")
	}
	if rep.Anchored {
		fmt.Fprintln(out, "anchor: checked")
	} else {
		fmt.Fprintln(out, "no anchor file (waived): entries removed from the end would go unnoticed after the last checkpoint")
	}
}
