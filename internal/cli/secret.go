package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/secretstore"
)

// valueOptions are the flags that give a secret's value, never on the
// command line itself: files, environment variables, or stdin.
type valueOptions struct {
	fromFile, fromEnv []string
	file              string
}

func (o *valueOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&o.fromFile, "from-file", nil, "KEY=PATH: a key of a kv secret from a file's content (PATH - is stdin; repeatable)")
	cmd.Flags().StringArrayVar(&o.fromEnv, "from-env", nil, "KEY=VAR: a key of a kv secret from an environment variable (repeatable)")
	cmd.Flags().StringVar(&o.file, "file", "", "a file secret's content from PATH (- is stdin)")
}

func readPath(p string) ([]byte, error) {
	if p == "-" {
		return readAllLimited(os.Stdin)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllLimited(f)
}

func readAllLimited(f *os.File) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(f, secretstore.MaxValue+1))
	if err == nil && len(b) > secretstore.MaxValue {
		return nil, fmt.Errorf("more than %d bytes", secretstore.MaxValue)
	}
	return b, err
}

// value reads the value and its kind.
func (o *valueOptions) value() (string, api.SecretValue, error) {
	var v api.SecretValue
	if o.file != "" {
		if len(o.fromFile)+len(o.fromEnv) > 0 {
			return "", v, errors.New("--file (a file secret) goes alone, without --from-file or --from-env")
		}
		b, err := readPath(o.file)
		if err != nil {
			return "", v, fmt.Errorf("reading the secret file: %w", err)
		}
		return secretstore.KindFile, api.SecretValue{File: b}, nil
	}
	v.Data = map[string]string{}
	for _, kv := range o.fromFile {
		k, p, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return "", v, fmt.Errorf("--from-file %q: want KEY=PATH", kv)
		}
		b, err := readPath(p)
		if err != nil {
			return "", v, fmt.Errorf("reading key %s: %w", k, err)
		}
		v.Data[k] = string(b)
	}
	for _, kv := range o.fromEnv {
		k, name, ok := strings.Cut(kv, "=")
		val, set := os.LookupEnv(name)
		if !ok || k == "" || !set {
			return "", v, fmt.Errorf("--from-env %q: want KEY=VAR with VAR set", kv)
		}
		v.Data[k] = val
	}
	if len(v.Data) == 0 {
		return "", v, errors.New("no value: give --from-file KEY=PATH, --from-env KEY=VAR or --file PATH")
	}
	return secretstore.KindKV, v, nil
}

// policyOptions are the release policy's flags.
type policyOptions struct {
	ids, classes, regions []string
	certified, tee        string
	noDrift, grant        bool
}

func (o *policyOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&o.ids, "spiffe-id", nil, "SPIFFE ID glob the secret is released to ('*' within a segment, final '/**' any rest; repeatable, required)")
	cmd.Flags().StringArrayVar(&o.classes, "class", nil, "data class the secret holds (from the governance catalogue; repeatable)")
	cmd.Flags().StringArrayVar(&o.regions, "region", nil, "region the workload's node must be in (repeatable; the classes' residency narrows it)")
	cmd.Flags().StringVar(&o.certified, "certified-under", "", "the workload's image must be certified under this policy (the server policy's name)")
	cmd.Flags().StringVar(&o.tee, "tee", "", "TEE attestation the workload must hold: sev-snp, tdx or sgx")
	cmd.Flags().BoolVar(&o.noDrift, "no-drift", false, "refuse a workload that drifted")
	cmd.Flags().BoolVar(&o.grant, "require-grant", false, "the workload's application must be granted every class of the secret")
}

func (o *policyOptions) policy() secretstore.Policy {
	return secretstore.Policy{SPIFFEIDs: o.ids, CertifiedUnder: o.certified, NoDrift: o.noDrift, TEE: o.tee,
		Regions: o.regions, RequireGrant: o.grant}
}

func secretPath(name string) string { return "/api/v1/secrets/" + url.PathEscape(name) }

// newSecretCmd is `bulwark secret`: the server's secret store.
func newSecretCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Manage the server's secrets for verified workloads (values go in, never come out)",
		Long: `Manage the secrets a bulwark server releases to workloads: key/value or file
secrets, envelope-encrypted, versioned, each with a release policy (SPIFFE ID
globs, certification, drift, TEE, region, data-class grants). Values are read
from files, environment variables or stdin, never from the command line; the
API never returns a value: only a verified workload fetches it (docs/secret-store.md).`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newSecretPutCmd(), newSecretRotateCmd(), newSecretMetaCmd(), newSecretListCmd(),
		newSecretDeleteCmd(), newSecretGrantCmd())
	return cmd
}

// secretCmd gives cmd the client flags and a RunE that calls run with
// the client they make.
func secretCmd(cmd *cobra.Command, run func(cmd *cobra.Command, cl *apiClient, args []string) error) *cobra.Command {
	var c clientOptions
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cl, err := c.client()
		if err != nil {
			return err
		}
		return run(cmd, cl, args)
	}
	c.addFlags(cmd)
	return cmd
}

// sendValue sends the value of val (with its kind, for put) to path and
// prints the version the server made.
func sendValue(cmd *cobra.Command, cl *apiClient, method, path string, val *valueOptions, body func(kind string, v api.SecretValue) any) error {
	kind, v, err := val.value()
	if err != nil {
		return err
	}
	var info secretstore.Info
	if err := cl.do(cmd.Context(), method, path, body(kind, v), &info); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "secret %s version %d\n", info.Name, info.Version)
	return nil
}

func newSecretPutCmd() *cobra.Command {
	var (
		val valueOptions
		pol policyOptions
	)
	cmd := secretCmd(&cobra.Command{
		Use:   "put NAME",
		Short: "Create a secret or add a version with a new value and policy",
		Example: `  bulwark secret put payments/db --from-file password=./pw.txt \
      --spiffe-id 'spiffe://prod.example/ns/payments/**' --class pii-eu --certified-under prod --no-drift`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, cl *apiClient, args []string) error {
		return sendValue(cmd, cl, http.MethodPut, secretPath(args[0]), &val, func(kind string, v api.SecretValue) any {
			return api.SecretRequest{Kind: kind, Data: v.Data, File: v.File, Classes: pol.classes, Policy: pol.policy()}
		})
	})
	val.addFlags(cmd)
	pol.addFlags(cmd)
	return cmd
}

func newSecretRotateCmd() *cobra.Command {
	var val valueOptions
	cmd := secretCmd(&cobra.Command{
		Use:     "rotate NAME",
		Short:   "Add a version with a new value, keeping the policy; workloads get it on their next fetch",
		Example: `  bulwark secret rotate payments/db --from-file password=./new-pw.txt`,
		Args:    cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, cl *apiClient, args []string) error {
		return sendValue(cmd, cl, http.MethodPost, secretPath(args[0])+"/rotate", &val, func(_ string, v api.SecretValue) any { return v })
	})
	val.addFlags(cmd)
	return cmd
}

func newSecretMetaCmd() *cobra.Command {
	return secretCmd(&cobra.Command{
		Use:   "get-meta NAME",
		Short: "Print a secret's metadata as JSON (never its value)",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, cl *apiClient, args []string) error {
		var info secretstore.Info
		if err := cl.do(cmd.Context(), http.MethodGet, secretPath(args[0]), nil, &info); err != nil {
			return err
		}
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	})
}

func newSecretListCmd() *cobra.Command {
	var format string
	cmd := secretCmd(&cobra.Command{
		Use:   "list",
		Short: "List the secrets: name, kind, version, classes, who they are released to",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, cl *apiClient, _ []string) error {
		var out struct {
			Secrets []secretstore.Info `json:"secrets"`
		}
		if err := cl.do(cmd.Context(), http.MethodGet, "/api/v1/secrets", nil, &out); err != nil {
			return err
		}
		switch format {
		case "json":
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(out.Secrets)
		case "table":
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tVERSION\tCLASSES\tREGIONS\tSPIFFE IDS")
			for _, s := range out.Secrets {
				regions := "any"
				if s.Regions != nil {
					regions = strings.Join(s.Regions, ",")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Kind, strconv.FormatInt(s.Version, 10),
					strings.Join(s.Classes, ","), regions, strings.Join(s.Policy.SPIFFEIDs, " "))
			}
			return tw.Flush()
		}
		return fmt.Errorf("--format %q: want table or json", format)
	})
	cmd.Flags().StringVar(&format, "format", "table", "table or json")
	return cmd
}

func newSecretDeleteCmd() *cobra.Command {
	return secretCmd(&cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a secret and all its versions",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, cl *apiClient, args []string) error {
		if err := cl.do(cmd.Context(), http.MethodDelete, secretPath(args[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "deleted secret %s\n", args[0])
		return nil
	})
}

func newSecretGrantCmd() *cobra.Command {
	var pol policyOptions
	cmd := secretCmd(&cobra.Command{
		Use:     "grant NAME",
		Short:   "Replace a secret's release policy and data classes (the value stays)",
		Example: `  bulwark secret grant payments/db --spiffe-id 'spiffe://prod.example/ns/payments/**' --class pii-eu --require-grant`,
		Args:    cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, cl *apiClient, args []string) error {
		var info secretstore.Info
		body := api.SecretPolicy{Classes: pol.classes, Policy: pol.policy()}
		if err := cl.do(cmd.Context(), http.MethodPut, secretPath(args[0])+"/policy", body, &info); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "secret %s released to %s\n", info.Name, strings.Join(info.Policy.SPIFFEIDs, " "))
		return nil
	})
	pol.addFlags(cmd)
	return cmd
}
