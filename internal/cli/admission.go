package cli

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/admission"
	"github.com/bulwark-sec/bulwark/internal/config"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

// newAdmissionCmd is `bulwark admission` and its subcommands.
func newAdmissionCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admission",
		Short: "Kubernetes admission webhook: only certified digests, least privilege, right nodes",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newAdmissionServeCmd(g))
	addAdmissionInstall(cmd, g) // admission_install.go
	return cmd
}

// newAdmissionServeCmd is `bulwark admission serve`.
func newAdmissionServeCmd(g *globalOptions) *cobra.Command {
	var (
		file     string
		sc       admission.ServeConfig
		insecure bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the validating and mutating admission webhook over HTTPS",
		Long: `Serve admission.k8s.io/v1 AdmissionReviews over HTTPS until SIGTERM or SIGINT:
POST /validate (deny, warn or audit) and POST /mutate (pin tags to digests,
place sensitive workloads), GET /healthz, /readyz and /metrics.

Images are admitted from an in-memory cache of digests verified under the
trust policy, filled from the server's certification feed and by first-sight
verification within the configured budget; unknown images that cannot be
verified in time are denied (failurePolicy: closed). docs/admission.md
describes the configuration file.`,
		Example: `  bulwark admission serve --admission-config /etc/bulwark/admission.yaml \
    --listen :8443 --tls-cert /tls/tls.crt --tls-key /tls/tls.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("--admission-config is required")
			}
			if !cmd.Flags().Changed("log-level") && os.Getenv(config.EnvName("log-level")) == "" && g.logLevel == "warn" {
				g.logLevel = "info"
				if err := g.setupLogging(); err != nil {
					return err
				}
			}
			cfg, err := admission.LoadConfig(file)
			if err != nil {
				return err
			}
			w, err := admission.New(cfg, admission.Options{Registry: sign.Options{Insecure: insecure}})
			if err != nil {
				return err
			}
			return w.Serve(cmd.Context(), sc)
		},
	}
	cmd.Flags().StringVar(&file, "admission-config", "", "webhook configuration file (YAML, see docs/admission.md)")
	cmd.Flags().StringVar(&sc.Listen, "listen", ":8443", "HTTPS address (host:port)")
	cmd.Flags().StringVar(&sc.TLSCert, "tls-cert", "", "serving certificate (PEM); re-read when it changes")
	cmd.Flags().StringVar(&sc.TLSKey, "tls-key", "", "serving key (PEM)")
	cmd.Flags().BoolVar(&insecure, "insecure-registry", false, "allow plain-HTTP registries (localhost and 127.0.0.1 always may)")
	return cmd
}
