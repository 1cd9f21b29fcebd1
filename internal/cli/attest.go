package cli

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/attest"
)

// newAttestCmd is `bulwark attest`: confidential-computing evidence.
func newAttestCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "attest",
		Short: "Verify TEE evidence (SEV-SNP, TDX, SGX) and record an image's reference measurements",
	}
	cmd.AddCommand(newAttestVerifyCmd(), newAttestReferenceCmd(g))
	return cmd
}

// attestServerFlags are `bulwark server`'s confidential-computing flags.
type attestServerFlags struct {
	collateral, policy string
	keys               []string
}

func (a *attestServerFlags) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&a.collateral, "attest-collateral", "", "confidential-computing collateral directory (AMD roots and VCEKs, Intel TCB info, QE identity, CRLs, policy.yaml); re-read when it changes (default: the vendors' roots, no Intel collateral)")
	f.StringVar(&a.policy, "attest-policy", "", "instance policy file: allowed regions, platform table, re-attestation period")
	f.StringArrayVar(&a.keys, "attest-key", nil, "public key whose image signatures and reference attestations the server believes, besides --signing-key's (repeatable)")
}

func newAttestVerifyCmd() *cobra.Command {
	var (
		kind, collateral, nonce, reportData, reference, format, at, vcek string
		allowMissing                                                     bool
	)
	cmd := &cobra.Command{
		Use:   "verify EVIDENCE",
		Short: "Verify an SEV-SNP report, TDX quote or SGX DCAP quote offline",
		Long: `Verify EVIDENCE offline against the collateral in --collateral (see
docs/confidential.md for its layout; without it, AMD's and Intel's real roots
and no Intel TCB collateral, so TDX and SGX quotes are refused unless
--allow-missing-collateral). EVIDENCE is the JSON envelope the server takes
({"kind","data","vcek"}, bytes base64) or the raw report or quote with
--kind (and --vcek for SEV-SNP).

--nonce requires REPORT_DATA to bind the server's nonce (SHA-512 of
"bulwark-tee-v1\0" and the nonce), --report-data requires it verbatim;
--reference requires the measurements of a reference predicate file (as
"bulwark attest reference --print" writes) and applies its policy.

Exit codes: 0 verified; 1 refused (the reason is printed: signature, root,
tcb-out-of-date, tcb-revoked, debug, nonce, collateral-expired,
measurement, policy); 2 bad input (unreadable or malformed evidence,
collateral or flags).`,
		Example: `  bulwark attest verify report.bin --kind sev-snp --vcek vcek.der --collateral /etc/bulwark/tee
  bulwark attest verify evidence.json --nonce 7f3a... --reference app.reference.json --format json
  bulwark attest verify quote.dat --kind tdx --collateral ./tdx-collateral --at 2023-07-01T00:00:00Z`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format, []string{"table", "json"}); err != nil {
				return err
			}
			ev, err := readEvidence(args[0], kind, vcek)
			if err != nil {
				return err
			}
			o := attest.Options{AllowMissingCollateral: allowMissing}
			if collateral != "" {
				if o, err = attest.LoadOptions(collateral); err != nil {
					return err
				}
				o.AllowMissingCollateral = allowMissing
			}
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return fmt.Errorf("parsing --at: %w", err)
				}
				o.Now = func() time.Time { return t }
			}
			v, err := attest.New(o)
			if err != nil {
				return err
			}
			var want attest.Expect
			if want.ReportData, err = expectedReportData(nonce, reportData); err != nil {
				return err
			}
			if reference != "" {
				b, err := os.ReadFile(reference)
				if err != nil {
					return fmt.Errorf("reading reference values: %w", err)
				}
				pred, err := attest.ParseReferencePredicate(b)
				if err != nil {
					return err
				}
				want.References, want.Policy = pred.References, pred.Policy
			}
			res, verr := v.Verify(ev, want)
			reason := attest.ReasonOf(verr)
			if verr != nil && reason == "" {
				return verr
			}
			if err := writeAttestResult(cmd.OutOrStdout(), format, ev.Kind, res, verr); err != nil {
				return err
			}
			switch {
			case reason == attest.ReasonMalformed:
				return verr // exit 2: bad input
			case verr != nil:
				return &exitError{code: ExitFindings, err: verr}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kind, "kind", "", "evidence kind of a raw EVIDENCE file: sev-snp, tdx or sgx")
	f.StringVar(&vcek, "vcek", "", "VCEK certificate (DER) of a raw SEV-SNP report")
	f.StringVar(&collateral, "collateral", "", "collateral directory (docs/confidential.md)")
	f.StringVar(&nonce, "nonce", "", "the server's nonce (hex) REPORT_DATA must bind")
	f.StringVar(&reportData, "report-data", "", "the exact REPORT_DATA (hex, up to 64 bytes, zero padded)")
	f.StringVar(&reference, "reference", "", "reference predicate file (JSON) the measurements must match")
	f.StringVar(&at, "at", "", "judge certificates and collateral at this time (RFC 3339) instead of now")
	f.BoolVar(&allowMissing, "allow-missing-collateral", false, "verify Intel quotes' signatures and PCK chain without TCB collateral (inspection only)")
	f.StringVarP(&format, "format", "f", "table", "output format: table or json")
	return cmd
}

// readEvidence reads the JSON envelope, or raw evidence of kind.
func readEvidence(path, kind, vcek string) (*attest.Evidence, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading evidence: %w", err)
	}
	if kind == "" {
		if len(b) == 0 || b[0] != '{' {
			return nil, errors.New("evidence is not a JSON envelope: give --kind for a raw report or quote")
		}
		return attest.ParseEvidence(b)
	}
	k, err := attest.ParseKind(kind)
	if err != nil {
		return nil, err
	}
	ev := &attest.Evidence{Kind: k, Data: b}
	if vcek != "" {
		if ev.VCEK, err = os.ReadFile(vcek); err != nil {
			return nil, fmt.Errorf("reading VCEK: %w", err)
		}
	}
	return ev, nil
}

func expectedReportData(nonce, raw string) ([]byte, error) {
	switch {
	case nonce != "" && raw != "":
		return nil, errors.New("give at most one of --nonce and --report-data")
	case nonce != "":
		n, err := hex.DecodeString(nonce)
		if err != nil || len(n) == 0 {
			return nil, fmt.Errorf("--nonce %q is not hex", nonce)
		}
		return attest.Binding(n, nil), nil
	case raw != "":
		r, err := hex.DecodeString(raw)
		if err != nil || len(r) > 64 {
			return nil, fmt.Errorf("--report-data must be hex of at most 64 bytes")
		}
		return r, nil
	}
	return nil, nil
}

type attestOutput struct {
	Kind     attest.Kind    `json:"kind"`
	Verified bool           `json:"verified"`
	Reason   attest.Reason  `json:"reason,omitempty"`
	Error    string         `json:"error,omitempty"`
	Result   *attest.Result `json:"result,omitempty"`
}

func writeAttestResult(w io.Writer, format string, k attest.Kind, res *attest.Result, verr error) error {
	out := attestOutput{Kind: k, Verified: verr == nil, Reason: attest.ReasonOf(verr), Result: res}
	if verr != nil {
		out.Error = verr.Error()
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if verr != nil {
		fmt.Fprintf(tw, "%s evidence\tREFUSED (%s)\n", k, out.Reason)
		fmt.Fprintf(tw, "why\t%s\n", out.Error)
		return tw.Flush()
	}
	fmt.Fprintf(tw, "%s evidence\tVERIFIED\n", k)
	rows := [][2]string{{"measurement", res.Measurement.String()}, {"host data", res.HostData.String()},
		{"signer", res.Signer.String()}, {"svn", fmt.Sprint(res.SVN)}, {"debug", fmt.Sprint(res.Debug)},
		{"tcb status", res.TCBStatus}, {"platform", res.Platform.String()}, {"report data", res.ReportData.String()}}
	for i, r := range res.RTMRs {
		rows = append(rows, [2]string{fmt.Sprintf("rtmr%d", i), r.String()})
	}
	for _, r := range rows {
		if strings.TrimSpace(r[1]) != "" {
			fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
		}
	}
	return tw.Flush()
}
