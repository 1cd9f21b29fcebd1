package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/kubeinstall"
)

// addAdmissionInstall adds `bulwark admission install` to parent.
func addAdmissionInstall(parent *cobra.Command, g *globalOptions) {
	var (
		file       string
		o          kubeinstall.Options
		apply      bool
		dryRun     string
		kubectl    string
		kubeconfig string
		kubeCtx    string
	)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Print (or apply) the Kubernetes objects that run the admission webhook",
		Long: `Print the objects that run the admission webhook as YAML, or apply them
with kubectl (--apply): Namespace, ServiceAccount (no API access, no token),
a ConfigMap with the admission configuration and every file it names (a Secret
for the server token file), a Secret with a serving certificate generated now,
Deployment, PodDisruptionBudget, Service, and the Mutating and Validating
WebhookConfigurations whose caBundle verifies that certificate.

The webhooks cover Pods (and pods/ephemeralcontainers), Deployments,
ReplicaSets, StatefulSets, DaemonSets, Jobs and CronJobs on CREATE and UPDATE,
with failurePolicy Fail and a 5 s timeout, in every namespace except
kube-system, the webhook's own and --exclude-namespace. Files the
configuration names must lie in its directory (they keep their relative
paths in the container). Running install again makes a new certificate and
rolls the pods. docs/kubernetes.md has the details; the Helm chart in
deploy/helm/bulwark-admission renders the same objects.`,
		Example: `  bulwark admission install --admission-config admission.yaml \
    --image registry.example/bulwark:1.0 > bulwark-admission.yaml
  bulwark admission install --admission-config admission.yaml \
    --image registry.example/bulwark:1.0 --apply --context prod`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("--admission-config is required")
			}
			if o.Image == "" {
				return errors.New("--image is required (the bulwark container image the webhook runs)")
			}
			switch dryRun {
			case "", "none", "client", "server":
			default:
				return fmt.Errorf("--dry-run %q: want none, client or server", dryRun)
			}
			if dryRun != "" && !apply {
				return errors.New("--dry-run applies to --apply only")
			}
			cf, err := kubeinstall.CollectConfig(file)
			if err != nil {
				return err
			}
			o.Config = cf
			b, err := kubeinstall.Build(o)
			if err != nil {
				return err
			}
			y, err := b.YAML()
			if err != nil {
				return err
			}
			if !apply {
				_, err := cmd.OutOrStdout().Write(y)
				return err
			}
			args := []string{"apply", "-f", "-"}
			if kubeconfig != "" {
				args = append(args, "--kubeconfig", kubeconfig)
			}
			if kubeCtx != "" {
				args = append(args, "--context", kubeCtx)
			}
			if dryRun != "" {
				args = append(args, "--dry-run="+dryRun)
			}
			kc := exec.CommandContext(cmd.Context(), kubectl, args...)
			kc.Stdin = bytes.NewReader(y)
			kc.Stdout, kc.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			if err := kc.Run(); err != nil {
				return fmt.Errorf("applying with %s: %w", kubectl, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "admission-config", "", "webhook configuration file (YAML, see docs/admission.md); shipped with the files it names")
	f.StringVar(&o.Image, "image", "", "bulwark container image the webhook runs (required)")
	f.StringVar(&o.Namespace, "namespace", kubeinstall.DefaultNamespace, "namespace of the webhook (created; exempt from admission)")
	f.StringVar(&o.Name, "name", kubeinstall.DefaultName, "name of the Deployment, Service and webhook configurations")
	f.Int32Var(&o.Replicas, "replicas", kubeinstall.DefaultReplicas, "webhook replicas")
	f.Int32Var(&o.TimeoutSeconds, "timeout-seconds", kubeinstall.DefaultTimeoutSeconds, "API server timeout of one webhook call (1-30)")
	f.DurationVar(&o.CertValidity, "cert-validity", kubeinstall.DefaultCertValidity, "validity of the generated CA and serving certificate")
	f.StringSliceVar(&o.ExcludeNamespaces, "exclude-namespace", nil, "namespace left out of admission (repeatable; kube-system and --namespace always are)")
	f.BoolVar(&apply, "apply", false, "apply with kubectl instead of printing")
	f.StringVar(&dryRun, "dry-run", "", "with --apply: kubectl's --dry-run (client or server)")
	f.StringVar(&kubectl, "kubectl", "kubectl", "kubectl binary for --apply")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig for --apply (default kubectl's)")
	f.StringVar(&kubeCtx, "context", "", "kubeconfig context for --apply")
	parent.AddCommand(cmd)
}
