package cli

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/image"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

func newAttestReferenceCmd(g *globalOptions) *cobra.Command {
	var (
		keyFile, kind, measurement, hostData, signer, from, policyFile string
		rtmrs                                                          []string
		productID                                                      int
		print                                                          bool
		img                                                            imageOptions
	)
	cmd := &cobra.Command{
		Use:   "reference [IMAGE]",
		Short: "Record the TEE measurements an image's instances must have, as a signed attestation",
		Long: `Sign the reference values of IMAGE (what an enclave or confidential VM running
it must measure) and the image's TEE policy (acceptable kinds, minimum TCB and
SVN, signers) as an in-toto attestation of predicate type
` + attest.ReferencePredicateType + `, stored next to the image as
cosign attest does. The server verifies each instance's evidence against it;
admission admits a pod with a confidential RuntimeClass only if it exists
for that kind.

The values come from flags (one reference) or --from, a predicate file
(JSON or YAML: {references: [...], policy: {...}}). --print writes the
predicate instead of signing it (for "bulwark attest verify --reference").`,
		Example: `  BULWARK_PASSWORD=... bulwark attest reference registry.example.com/app@sha256:... --key release.key \
      --kind sev-snp --measurement 6f1c...e2 --policy tee-policy.yaml
  bulwark attest reference --kind sgx --measurement 9a.. --signer 4b.. --print > app.reference.json`,
		Args: cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pred, err := referencePredicate(from, kind, measurement, hostData, signer, rtmrs, productID, cmd.Flags().Changed("product-id"))
			if err != nil {
				return err
			}
			if policyFile != "" {
				p, err := attest.LoadPolicy(policyFile)
				if err != nil {
					return err
				}
				pred.Policy = &p
			}
			if err := pred.Validate(); err != nil {
				return err
			}
			if print {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(pred)
			}
			if len(args) != 1 || keyFile == "" {
				return errors.New("give IMAGE and --key to sign, or --print")
			}
			ctx := cmd.Context()
			pass, err := readPassphrase(cmd, g, false)
			if err != nil {
				return err
			}
			s, err := sign.LoadKeyFile(keyFile, pass)
			if err != nil {
				return err
			}
			ref, err := image.ParseReference(args[0], img.insecure)
			if err != nil {
				return err
			}
			ropts, err := image.RemoteOptions(ctx, img.imageOpts(g))
			if err != nil {
				return err
			}
			desc, err := remote.Head(ref, ropts...)
			if err != nil {
				return fmt.Errorf("resolving %s: %w", ref, err)
			}
			digest := ref.Context().Digest(desc.Digest.String())
			if err := attest.RecordReference(ctx, digest, s, pred, sign.Options{Insecure: img.insecure}); err != nil {
				return err
			}
			tag, _ := sign.AttestationTag(digest)
			fmt.Fprintf(cmd.OutOrStdout(), "recorded %d reference value set(s) (%v) for %s\n  attestation %s\n  key         %s\n",
				len(pred.References), pred.Kinds(), digest, tag, sign.KeyID(s.PublicKey()))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "", "private key (passphrase from BULWARK_PASSWORD or COSIGN_PASSWORD)")
	f.StringVar(&from, "from", "", "predicate file (JSON or YAML) with the references (and policy)")
	f.StringVar(&kind, "kind", "", "TEE kind of the one reference given by flags: sev-snp, tdx or sgx")
	f.StringVar(&measurement, "measurement", "", "SEV-SNP MEASUREMENT, TDX MRTD or SGX MRENCLAVE (hex)")
	f.StringVar(&hostData, "host-data", "", "SEV-SNP HOST_DATA or TDX MRCONFIGID (hex)")
	f.StringArrayVar(&rtmrs, "rtmr", nil, "TDX RTMR0..3 in order (hex; empty skips one; repeatable)")
	f.StringVar(&signer, "signer", "", "SGX MRSIGNER or SEV-SNP ID key digest (hex)")
	f.IntVar(&productID, "product-id", 0, "SGX ISVPRODID")
	f.StringVar(&policyFile, "policy", "", "the image's TEE policy file (kinds, minSnpTcb, minSvn, signers, ...)")
	f.BoolVar(&print, "print", false, "print the predicate (JSON) instead of signing it")
	f.BoolVar(&img.insecure, "insecure", false, "allow plain HTTP for the registry")
	return cmd
}

func referencePredicate(from, kind, measurement, hostData, signer string, rtmrs []string, productID int, withProduct bool) (*attest.ReferencePredicate, error) {
	if from != "" {
		if kind != "" || measurement != "" {
			return nil, errors.New("give either --from or the reference flags, not both")
		}
		b, err := os.ReadFile(from)
		if err != nil {
			return nil, fmt.Errorf("reading reference values: %w", err)
		}
		if b, err = yaml.YAMLToJSON(b); err != nil {
			return nil, fmt.Errorf("parsing %s: %w", from, err)
		}
		return attest.ParseReferencePredicate(b)
	}
	k, err := attest.ParseKind(kind)
	if err != nil {
		return nil, fmt.Errorf("--kind: %w", err)
	}
	r := attest.Reference{Kind: k}
	for _, h := range []struct {
		flag, v string
		dst     *attest.Hex
	}{{"--measurement", measurement, &r.Measurement}, {"--host-data", hostData, &r.HostData}, {"--signer", signer, &r.Signer}} {
		if *h.dst, err = hex.DecodeString(h.v); err != nil {
			return nil, fmt.Errorf("%s is not hex: %w", h.flag, err)
		}
		if len(*h.dst) == 0 {
			*h.dst = nil
		}
	}
	for i, m := range rtmrs {
		b, err := hex.DecodeString(m)
		if err != nil {
			return nil, fmt.Errorf("--rtmr %d is not hex: %w", i, err)
		}
		r.RTMRs = append(r.RTMRs, b)
	}
	if withProduct {
		if productID < 0 || productID > 0xffff {
			return nil, fmt.Errorf("--product-id %d is out of range", productID)
		}
		p := uint16(productID)
		r.ProductID = &p
	}
	return &attest.ReferencePredicate{References: []attest.Reference{r}}, nil
}
