package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/certify"
	"github.com/bulwark-sec/bulwark/internal/image"
	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

// Predicate types of the attestations certify writes.
const (
	PredicateSBOM = certify.PredicateSBOM
	PredicateScan = certify.PredicateScan
)

func newCertifyCmd(g *globalOptions) *cobra.Command {
	var (
		gate        gateOptions
		keyFile     string
		annotations map[string]string
		format      string
	)
	cmd := &cobra.Command{
		Use:   "certify IMAGE",
		Short: "Judge a registry image and, if it passes, sign its digest with attestations",
		Long: `Resolve IMAGE to its digest, inventory and scan it, evaluate the policy, and only
if every rule passes (or is waived) push to the registry, next to the image:
  - a cosign-compatible signature of the digest (sha256-<digest>.sig), and
  - in-toto attestations (sha256-<digest>.att): the SBOM (CycloneDX), the
    vulnerability scan, and the policy decision (policy digest, rule results, time).
On failure nothing is pushed and the failing rules are printed.

Exit codes: 0 certified, 1 the image fails the policy, 2 usage or runtime error.`,
		Example: `  BULWARK_PASSWORD=... bulwark certify registry.example.com/team/app:1.4 --key bulwark.key --policy gold.yaml
  cosign verify --key bulwark.pub registry.example.com/team/app:1.4`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format, []string{"table", "json"}); err != nil {
				return err
			}
			ctx := cmd.Context()
			pass, err := readPassphrase(cmd, g, false)
			if err != nil {
				return err
			}
			signer, err := sign.LoadKeyFile(keyFile, pass)
			if err != nil {
				return err
			}
			ref, err := image.ParseReference(args[0], gate.img.insecure)
			if err != nil {
				return err
			}
			ropts, err := image.RemoteOptions(ctx, gate.img.imageOpts(g))
			if err != nil {
				return err
			}
			desc, err := remote.Head(ref, ropts...)
			if err != nil {
				return fmt.Errorf("resolving %s: %w", ref, err)
			}
			digest := ref.Context().Digest(desc.Digest.String())
			if desc.MediaType.IsIndex() {
				// certify the platform image that will run, as sbom reads it
				img, err := remote.Image(ref, ropts...)
				if err != nil {
					return fmt.Errorf("resolving %s: %w", ref, err)
				}
				d, err := img.Digest()
				if err != nil {
					return err
				}
				digest = ref.Context().Digest(d.String())
			}
			a, err := gate.run(ctx, g, digest.String())
			if err != nil {
				return err
			}
			d := a.Decision
			if !d.Pass {
				// the decision on stdout, as policy check writes it; the verdict on stderr
				if err := policy.Encode(cmd.OutOrStdout(), d, format); err != nil {
					return err
				}
				return &exitError{code: ExitFindings, err: fmt.Errorf("%s fails the policy (%s); nothing was signed", digest, strings.Join(d.Failed(), ", "))}
			}
			if err := certify.Write(ctx, digest, signer, a, annotations, sign.Options{}); err != nil {
				return err
			}
			res := certification{Image: args[0], Digest: digest.String(), Policy: d.Policy, PolicyDigest: d.PolicyDigest, Time: d.Time,
				Attestations: certify.Predicates, KeyID: sign.KeyID(signer.PublicKey())}
			if sigTag, err := sign.SignatureTag(digest); err == nil {
				res.Signature = sigTag.String()
			}
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			w := cmd.OutOrStdout()
			policy.Table(w, d)
			fmt.Fprintf(w, "\ncertified %s\n  signature    %s\n  attestations %s\n", res.Digest, res.Signature, strings.Join(res.Attestations, ", "))
			return nil
		},
	}
	gate.addFlags(cmd)
	cmd.Flags().StringVar(&keyFile, "key", "", "private key (bulwark key generate or cosign generate-key-pair); passphrase from BULWARK_PASSWORD or COSIGN_PASSWORD")
	cmd.Flags().StringToStringVarP(&annotations, "annotation", "a", nil, "extra signature annotations (key=value)")
	cmd.Flags().StringVarP(&format, "format", "f", "table", "output format: table, json")
	cmd.MarkFlagRequired("key")
	return cmd
}

// certification is certify's json output.
type certification struct {
	Image        string    `json:"image"`
	Digest       string    `json:"digest"`
	Policy       string    `json:"policy"`
	PolicyDigest string    `json:"policyDigest"`
	Time         time.Time `json:"time"`
	Signature    string    `json:"signature"`
	Attestations []string  `json:"attestations"`
	KeyID        string    `json:"keyID"`
}
