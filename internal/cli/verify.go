package cli

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/sign"
)

var verifyFormats = []string{"table", "json"}

func newVerifyCmd(g *globalOptions) *cobra.Command {
	var (
		keyFile      string
		policyFile   string
		attestations []string
		maxAge       time.Duration
		policyDigest string
		format       string
		insecure     bool
	)
	cmd := &cobra.Command{
		Use:   "verify IMAGE",
		Short: "Check an image's signature and attestations in its registry",
		Long: `Resolve IMAGE to the digest it names now and check, in the registry, that a
signature by the key names that digest (cosign's format: the
sha256-<hex>.sig tag) and that each required attestation (the
sha256-<hex>.att tag) is signed by the key and is about that digest.

The key is --key, or the keys a --trust-policy file trusts for IMAGE's
repository (with the attestations it requires). --max-age and
--policy-digest require a Bulwark decision attestation
(` + sign.DecisionPredicateType + `) made at most that long
ago, under that policy digest.

Exit codes: 0 verified; 1 not verified (no or bad signature, moved tag,
missing attestation, stale decision, ...); 2 the check could not be made
(registry unreachable, bad input).`,
		Example: `  bulwark verify registry.example.com/app:1.4 --key release.pub
  bulwark verify registry.example.com/app:1.4 --key release.pub --max-age 24h --policy-digest sha256:...
  bulwark verify registry.example.com/app@sha256:... --trust-policy trust.yaml --format json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format, verifyFormats); err != nil {
				return err
			}
			if (keyFile == "") == (policyFile == "") {
				return errors.New("give exactly one of --key and --trust-policy")
			}
			if maxAge < 0 {
				return fmt.Errorf("--max-age %s is negative", maxAge)
			}
			want := sign.Requirements{Attestations: attestations, MaxDecisionAge: maxAge, PolicyDigest: policyDigest}
			opts := sign.Options{Insecure: insecure}
			var (
				v   *sign.Verified
				err error
			)
			if keyFile != "" {
				var pub crypto.PublicKey
				if pub, err = loadPublicKeyFile(keyFile); err != nil {
					return err
				}
				v, err = sign.Verify(cmd.Context(), args[0], pub, want, opts)
			} else {
				var tp *sign.TrustPolicy
				if tp, err = sign.LoadTrustPolicy(policyFile); err != nil {
					return err
				}
				v, err = tp.Verify(cmd.Context(), args[0], want, opts)
			}
			var ve *sign.VerificationError
			if errors.As(err, &ve) {
				if format == "json" {
					if werr := writeVerifyJSON(cmd.OutOrStdout(), failedReport(ve)); werr != nil {
						return werr
					}
				}
				return &exitError{code: ExitFindings, err: err}
			}
			if err != nil {
				return err
			}
			if format == "json" {
				return writeVerifyJSON(cmd.OutOrStdout(), verifiedReport(v))
			}
			return writeVerifyTable(cmd.OutOrStdout(), v, time.Now())
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "", "public key file (PEM, as bulwark key generate or cosign generate-key-pair write)")
	f.StringVar(&policyFile, "trust-policy", "", "trust policy file: the keys and attestations required per repository")
	f.StringSliceVar(&attestations, "attestation", nil, "require an attestation of this predicate type (repeatable)")
	f.DurationVar(&maxAge, "max-age", 0, "require a decision attestation at most this old, e.g. 24h (0: any age)")
	f.StringVar(&policyDigest, "policy-digest", "", "require a decision attestation made under this policy digest")
	f.StringVarP(&format, "format", "f", "table", "output format: "+strings.Join(verifyFormats, ", "))
	f.BoolVar(&insecure, "insecure", false, "allow plain HTTP for the registry (localhost and private addresses always may)")
	return cmd
}

func loadPublicKeyFile(path string) (crypto.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading public key: %w", err)
	}
	pub, err := sign.LoadPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	return pub, nil
}

// verifyReport is the json output: what was verified, without the
// (possibly large) predicates other than the decision.
type verifyReport struct {
	Reference string `json:"reference"`
	Verified  bool   `json:"verified"`
	Digest    string `json:"digest,omitempty"`
	Error     string `json:"error,omitempty"`
	// Reason is the failure class: "no signature", "bad signature", ...
	Reason       string                   `json:"reason,omitempty"`
	Signatures   []sign.VerifiedSignature `json:"signatures,omitempty"`
	Attestations []attestationSummary     `json:"attestations,omitempty"`
	Decision     *sign.Decision           `json:"decision,omitempty"`
}

type attestationSummary struct {
	PredicateType string `json:"predicateType"`
	KeyID         string `json:"keyId"`
	Layer         string `json:"layer"`
}

func verifiedReport(v *sign.Verified) verifyReport {
	r := verifyReport{Reference: v.Reference, Verified: true, Digest: v.Digest, Signatures: v.Signatures, Decision: v.Decision}
	for _, a := range v.Attestations {
		r.Attestations = append(r.Attestations, attestationSummary{PredicateType: a.PredicateType, KeyID: a.KeyID, Layer: a.Layer})
	}
	return r
}

func failedReport(ve *sign.VerificationError) verifyReport {
	r := verifyReport{Reference: ve.Reference, Digest: ve.Digest, Error: ve.Error()}
	if ve.Err != nil {
		r.Reason = ve.Err.Error()
	}
	return r
}

func writeVerifyJSON(w io.Writer, r verifyReport) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func writeVerifyTable(w io.Writer, v *sign.Verified, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "IMAGE\t%s\n", v.Reference)
	fmt.Fprintf(tw, "DIGEST\t%s\n", v.Digest)
	for _, s := range v.Signatures {
		fmt.Fprintf(tw, "SIGNATURE\tverified, key %s\n", shortKeyID(s.KeyID))
	}
	for _, a := range v.Attestations {
		fmt.Fprintf(tw, "ATTESTATION\t%s, key %s\n", a.PredicateType, shortKeyID(a.KeyID))
	}
	if d := v.Decision; d != nil {
		fmt.Fprintf(tw, "DECISION\t%s (%s ago), policy %s\n", d.Time.UTC().Format(time.RFC3339), now.Sub(d.Time).Round(time.Second), d.PolicyDigest)
	}
	return tw.Flush()
}

// shortKeyID abbreviates "sha256:<64 hex>" to 12 hex digits for tables.
func shortKeyID(id string) string {
	if len(id) > len("sha256:")+12 {
		return id[:len("sha256:")+12]
	}
	return id
}
