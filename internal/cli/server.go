package cli

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/config"
	"github.com/bulwark-sec/bulwark/internal/image"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// dataDirOption is the --data-dir and --database flags of the server
// commands.
type dataDirOption struct{ dir, database string }

func (o *dataDirOption) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.dir, "data-dir", "", "server data directory: database, audit anchor, layer cache (default $XDG_DATA_HOME/bulwark or ~/.local/share/bulwark)")
	cmd.Flags().StringVar(&o.database, "database", "", "PostgreSQL DSN (postgres://...) shared by server replicas; default: SQLite in the data directory")
}

// path returns --data-dir or the default.
func (o *dataDirOption) path() (string, error) {
	if o.dir != "" {
		return o.dir, nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "bulwark"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the data directory (set --data-dir): %w", err)
	}
	return filepath.Join(home, ".local", "share", "bulwark"), nil
}

// newServerCmd is `bulwark server` and its subcommands.
func newServerCmd(g *globalOptions) *cobra.Command {
	var (
		data       dataDirOption
		att        attestServerFlags
		listen     string
		workers    int
		poll       time.Duration
		watch      time.Duration
		advisoryDB string
		sources    []string
		advEvery   time.Duration
		policyFile string
		signingKey string
		secretKey  string
		insecure   bool
		limits     image.Limits
		cp         checkpointOptions
		private    []string
		maxAge     time.Duration
		apiLimits  api.Limits
		ids        identityOptions
		secretsOpt secretsOptions
		respPolicy string
		kubeconfig string
		agentAuth  agentAuthOptions
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: API, scan workers, audit log",
		Long: `Run the Bulwark control plane on an embedded SQLite database in the data
directory until SIGTERM or SIGINT: the JSON API (see /api/v1/openapi.json),
Prometheus metrics at /metrics and the scan workers.

The API needs a token. Create the first admin token with direct access to the
data directory, before or while the server runs:

  bulwark server token create --name bootstrap --role admin

Every scan judges the image with --policy (the built-in rules by default) and
records the decision; with --signing-key, images that pass are certified
(attestations and a cosign-compatible signature pushed next to them; the
passphrase comes from BULWARK_PASSWORD). With --advisory-source, the advisory
database is updated at start and every --advisory-interval, and the stored
images are re-evaluated against what changed.

Registry credentials and webhook secrets are sealed with the key in
--secret-key-file, else $BULWARK_SECRET_KEY, else DATA_DIR/secret.key
(created 0600 on first start). Keep that key out of database backups.`,
		Example: `  bulwark server --data-dir /var/lib/bulwark --listen 127.0.0.1:8480
  bulwark server token create --name ci --role operator`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := data.path()
			if err != nil {
				return err
			}
			// A daemon's default is to say what it does: info, unless the
			// level was chosen.
			if !cmd.Flags().Changed("log-level") && os.Getenv(config.EnvName("log-level")) == "" && g.logLevel == "warn" {
				g.logLevel = "info"
				if err := g.setupLogging(); err != nil {
					return err
				}
			}
			checkpoints, err := cp.config()
			if err != nil {
				return err
			}
			secrets, err := secretsOpt.config()
			if err != nil {
				return err
			}
			var pass []byte
			if signingKey != "" {
				if pass, err = readPassphrase(cmd, g, false); err != nil {
					return err
				}
			}
			cfg := server.Config{
				DataDir:           dir,
				Database:          data.database,
				Listen:            listen,
				Workers:           workers,
				PollInterval:      poll,
				WatchInterval:     watch,
				AdvisoryDB:        advisoryDB,
				AdvisorySources:   sources,
				AdvisoryInterval:  advEvery,
				Policy:            policyFile,
				SigningKey:        signingKey,
				SigningPassphrase: pass,
				SecretKeyFile:     secretKey,
				Insecure:          insecure,
				Checkpoints:       checkpoints,
				ImageLimits:       limits,
				AllowPrivate:      private,
				AdvisoryMaxAge:    maxAge,
				APILimits:         apiLimits,
				AttestCollateral:  att.collateral,
				AttestPolicy:      att.policy,
				AttestKeys:        att.keys,
				Identity:          ids.config(),
				Secrets:           secrets,
				ResponsePolicy:    respPolicy,
				Kubeconfig:        kubeconfig,
			}
			agentAuth.apply(&cfg)
			return server.Run(cmd.Context(), cfg)
		},
	}
	data.addFlags(cmd)
	cmd.Flags().StringVar(&listen, "listen", server.DefaultListen, "API address (host:port)")
	cmd.Flags().IntVar(&workers, "workers", server.DefaultWorkers, "scan workers")
	cmd.Flags().DurationVar(&poll, "poll-interval", server.DefaultPollInterval, "how often an idle worker looks for a job")
	cmd.Flags().DurationVar(&watch, "watch-interval", server.DefaultWatchInterval, "how often registered registries are polled for new tags and digests")
	cmd.Flags().StringVar(&advisoryDB, "advisory-db", "", "advisory database that POST /api/v1/advisories/import updates and re-evaluation reads (default DATA_DIR/osv.db)")
	cmd.Flags().StringArrayVar(&sources, "advisory-source", nil, "advisory source imported at start and on the schedule (URL of an OSV all.zip, zip, directory or record; NAME=LOCATION; repeatable)")
	cmd.Flags().DurationVar(&advEvery, "advisory-interval", server.DefaultAdvisoryInterval, "how often the advisory sources are imported")
	cmd.Flags().StringVar(&policyFile, "policy", "", "policy file the scans judge images with (default: the built-in rules)")
	cmd.Flags().StringVar(&signingKey, "signing-key", "", "private key to certify passing images with (passphrase from BULWARK_PASSWORD)")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP and unverified TLS for every registry (localhost, loopback and private addresses always may; a registry registered with an http:// URL is spoken to in plain HTTP)")
	addLimitFlags(cmd.Flags(), &limits)
	cmd.Flags().StringArrayVar(&private, "allow-private-host", nil, "host or host:port (registry, advisory source) that may be reached at a loopback, private or link-local address; every other host must resolve to public addresses; * allows all (repeatable)")
	cmd.Flags().DurationVar(&maxAge, "advisory-max-age", server.DefaultAdvisoryMaxAge, "advisory data older than this fails the vulnerabilities rule as unknown (negative: no maximum)")
	cmd.Flags().Float64Var(&apiLimits.Rate, "api-rate", api.DefaultRate, "API requests per second each token may sustain (negative: no limit)")
	cmd.Flags().IntVar(&apiLimits.Burst, "api-burst", api.DefaultBurst, "API requests each token may send at once")
	cmd.Flags().DurationVar(&apiLimits.RequestTimeout, "request-timeout", api.DefaultRequestTimeout, "bound of an API request (the advisory import excepted; negative: none)")
	cmd.Flags().StringVar(&secretKey, "secret-key-file", "", "key that seals registry credentials and webhook secrets (default $BULWARK_SECRET_KEY, else DATA_DIR/secret.key)")
	cp.addFileFlags(cmd)
	cp.addExportFlags(cmd)
	att.addFlags(cmd)
	ids.addFlags(cmd)
	secretsOpt.addFlags(cmd)
	cmd.Flags().StringVar(&respPolicy, "response-policy", "", "runtime response policy (YAML: alert, replace, rollback, quarantine per namespace and application; rate limit, breaker, dry-run); default: alert only")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", `kubeconfig of the cluster the runtime responses act on and workload identity reads pods' service accounts from and the agent allowlist route checks nodes' claims against ("in-cluster": the pod's service account); default: none, actions other than alert are skipped`)
	agentAuth.addFlags(cmd)
	cmd.AddCommand(newServerTokenCmd())
	return cmd
}

func newServerTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage API tokens with direct access to the data directory",
		Args:  cobra.NoArgs,
	}
	var (
		data      dataDirOption
		name      string
		role      string
		secretKey string
		cp        checkpointOptions
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an API token and print it (shown once)",
		Long: `Create an API token and print it on stdout. It is shown only now; the
database keeps its SHA-256. The creation is recorded in the audit log with the
actor cli:<user>. This is how the first admin token is made: the API itself
needs one.`,
		Example: `  bulwark server token create --name bootstrap --role admin`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return errors.New("--name is required")
			}
			dir, err := data.path()
			if err != nil {
				return err
			}
			st, err := server.OpenStoreAt(cmd.Context(), dir, data.database)
			if err != nil {
				return err
			}
			defer st.Close()
			auditor := api.NewAuditor(st, audit.AnchorPath(server.DBPath(dir)))
			created, err := api.CreateToken(cmd.Context(), auditor, cliActor(), name, role)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "created token %d %q with role %s; it is not shown again\n", created.ID, created.Name, created.Role)
			if err := checkpointAfterCLI(cmd, st, dir, secretKey, cp); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: the audit log was not checkpointed (the server will at start): %v\n", err)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), created.Token)
			return err
		},
	}
	data.addFlags(create)
	create.Flags().StringVar(&name, "name", "", "what the token is for (required)")
	create.Flags().StringVar(&role, "role", store.RoleViewer, "viewer, operator or admin")
	create.Flags().StringVar(&secretKey, "secret-key-file", "", "key that seals the audit checkpoint key (default $BULWARK_SECRET_KEY, else DATA_DIR/secret.key)")
	cp.addFileFlags(create)
	cmd.AddCommand(create)
	return cmd
}

// cliActor names the local user in the audit log.
func cliActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}
