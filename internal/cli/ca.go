package cli

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/server"
)

// identityOptions are the workload identity flags of `bulwark server`.
type identityOptions struct {
	trustDomain, dir, template string
	x509TTL, grace             time.Duration
	federate                   []string
	teePolicy                  string
	requireTEE                 []string
}

func (o *identityOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.trustDomain, "trust-domain", "", "SPIFFE trust domain of workload identities (none: identity is off)")
	cmd.Flags().StringVar(&o.dir, "ca-dir", "", "identity directory: root.crt, the sealed intermediate and JWT keys (default DATA_DIR/identity; bulwark ca intermediate fills it for an offline root)")
	cmd.Flags().StringVar(&o.template, "identity-template", identity.DefaultTemplate, "SPIFFE ID template ({namespace} {serviceAccount} {pod} {container} {app} {node} {label:KEY})")
	cmd.Flags().DurationVar(&o.x509TTL, "svid-ttl", identity.DefaultX509TTL, "life of an X.509-SVID (renewed at half life; at most 24h)")
	cmd.Flags().DurationVar(&o.grace, "node-grace", identity.DefaultNodeGrace, "how long after a node's last heartbeat its workloads are still renewed")
	cmd.Flags().StringArrayVar(&o.federate, "federate-with", nil, "another trust domain's bundle endpoint, TD=https://host/path, whose bundle workloads get beside ours (repeatable)")
	cmd.Flags().StringVar(&o.teePolicy, "identity-tee-policy", "", "identity TEE policy file: rules naming workloads (spiffeIDs, namespaces globs) whose SVIDs need a verified confidential instance (tee: kinds, regions)")
	cmd.Flags().StringArrayVar(&o.requireTEE, "identity-require-tee", nil, "SELECTOR=KIND[,KIND]: identities of workloads matching a SPIFFE ID glob (or ns:GLOB) only while a verified confidential instance of that kind vouches (repeatable)")
}

func (o *identityOptions) config() server.IdentityConfig {
	return server.IdentityConfig{TrustDomain: o.trustDomain, Dir: o.dir, Template: o.template, X509TTL: o.x509TTL, NodeGrace: o.grace, Federate: o.federate,
		TEEPolicy: o.teePolicy, RequireTEE: o.requireTEE}
}

// newCACmd is `bulwark ca`: the offline root of workload identity.
func newCACmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Keep the workload identity root offline: make it, sign the server's intermediate",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newCAInitCmd(), newCAIntermediateCmd())
	return cmd
}

func newCAInitCmd() *cobra.Command {
	var td, out, sealFile string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Make a root for a trust domain in a directory kept offline",
		Long: `Make a SPIFFE root (ECDSA P-256) for a trust domain: DIR/root.crt (public)
and DIR/root.key, sealed with the key in --seal-key-file (default DIR/seal.key,
made now, 0600). Keep the directory, or at least root.key and the seal key, off
the server: the server gets only an intermediate (bulwark ca intermediate).`,
		Example: `  bulwark ca init --trust-domain prod.example --out /media/offline/bulwark-root`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if td == "" || out == "" {
				return errors.New("--trust-domain and --out are required")
			}
			d, err := spiffeid.TrustDomainFromString(td)
			if err != nil {
				return fmt.Errorf("--trust-domain %q: %w", td, err)
			}
			if err := os.MkdirAll(out, 0o700); err != nil {
				return fmt.Errorf("creating %q: %w", out, err)
			}
			key, err := seal.Load(sealFile, filepath.Join(out, "seal.key"))
			if err != nil {
				return err
			}
			root, err := identity.NewRoot(d, ttl, time.Now())
			if err != nil {
				return err
			}
			if err := identity.WriteRoot(out, key, root); err != nil {
				return err
			}
			sum := sha256.Sum256(root.Cert.Raw)
			fmt.Fprintf(cmd.OutOrStdout(), "root of %s: %s (sha256 %x), until %s\n", d.Name(), filepath.Join(out, identity.RootCertFile),
				sum, root.Cert.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&td, "trust-domain", "", "the SPIFFE trust domain (required)")
	cmd.Flags().StringVar(&out, "out", "", "directory for the root (required; created 0700)")
	cmd.Flags().StringVar(&sealFile, "seal-key-file", "", "key sealing root.key (default DIR/seal.key, made when missing)")
	cmd.Flags().DurationVar(&ttl, "ttl", identity.DefaultRootTTL, "life of the root")
	return cmd
}

func newCAIntermediateCmd() *cobra.Command {
	var rootDir, rootSeal, serverSeal, caDir string
	var data dataDirOption
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "intermediate",
		Short: "Sign an intermediate for the server with the offline root",
		Long: `Sign a new intermediate with the root in --root and write it, sealed with
the server's secret key, to the server's identity directory with root.crt (the
root's key is not copied). Run it where both are reachable (the server host,
with the root mounted for the moment), before the intermediate's end: the
server warns a day ahead. The JWT signing keys the server holds are kept.`,
		Example: `  bulwark ca intermediate --root /media/offline/bulwark-root --data-dir /var/lib/bulwark`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rootDir == "" {
				return errors.New("--root is required")
			}
			if rootSeal == "" {
				rootSeal = filepath.Join(rootDir, "seal.key")
			}
			if _, err := os.Stat(rootSeal); err != nil {
				return fmt.Errorf("the root's seal key: %w", err)
			}
			rkey, err := seal.Load(rootSeal, "")
			if err != nil {
				return err
			}
			_, root, err := identity.ReadRoot(rootDir, rkey)
			if err != nil {
				return err
			}
			if root == nil {
				return fmt.Errorf("%s holds no root key", rootDir)
			}
			dir, err := data.path()
			if err != nil {
				return err
			}
			skey, err := seal.Load(serverSeal, filepath.Join(dir, "secret.key"))
			if err != nil {
				return err
			}
			if caDir == "" {
				caDir = filepath.Join(dir, "identity")
			}
			it, err := server.InstallIntermediate(caDir, skey, root, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "intermediate %x in %s, until %s\n", it.Cert.SerialNumber, caDir, it.Cert.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	data.addFlags(cmd)
	cmd.Flags().StringVar(&rootDir, "root", "", "the root's directory (bulwark ca init --out; required)")
	cmd.Flags().StringVar(&rootSeal, "root-seal-key-file", "", "key sealing root.key (default ROOT/seal.key)")
	cmd.Flags().StringVar(&serverSeal, "secret-key-file", "", "the server's secret key (default $BULWARK_SECRET_KEY, else DATA_DIR/secret.key)")
	cmd.Flags().StringVar(&caDir, "ca-dir", "", "the server's identity directory (default DATA_DIR/identity)")
	cmd.Flags().DurationVar(&ttl, "ttl", identity.DefaultIntermediateTTL, "life of the intermediate")
	return cmd
}
