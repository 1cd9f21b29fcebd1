package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/trust"
)

// newIdentityCmd is `bulwark identity`: the server's identity decisions.
func newIdentityCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Workload identities the server issued or refused, and why",
		Args:  cobra.NoArgs,
	}
	o := &serverOptions{}
	o.addFlags(cmd)
	list := &cobra.Command{
		Use:     "list",
		Short:   "The last identity decision of every container",
		Example: `  bulwark identity list --server https://bulwark.example:8480 --token-file viewer.token`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ds, err := decisions(cmd, o, "")
			if err != nil || o.json {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tCONTAINER\tIMAGE\tSPIFFE ID\tSTATE")
			for _, d := range ds {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Node, d.Container, shortDigest(d.Image), d.SpiffeID, state(d))
			}
			return tw.Flush()
		},
	}
	why := &cobra.Command{
		Use:   "why CONTAINER",
		Short: "Why a container holds its identity or not (exit 1 when it holds none)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ds, err := decisions(cmd, o, args[0])
			if err != nil {
				return err
			}
			if len(ds) == 0 {
				return fmt.Errorf("no identity decision for container %q on this server (its agent never asked)", args[0])
			}
			held := false
			for _, d := range ds {
				held = held || (d.Issued && !d.Stale && time.Now().Before(d.Expiry))
				if o.json {
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s/%s  image %s\n  %s\n  %s", d.Node, d.Container, d.Image, d.SpiffeID, state(d))
				if d.Detail != "" {
					fmt.Fprintf(cmd.OutOrStdout(), ": %s", d.Detail)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "\n  decided %s\n", d.Time.Format(time.RFC3339))
			}
			if !held {
				return &exitError{code: 1, err: fmt.Errorf("container %s holds no identity", args[0])}
			}
			return nil
		},
	}
	var format, out string
	bundle := &cobra.Command{
		Use:   "bundle",
		Short: "Export the trust bundle: SPIFFE JWKS, or the X.509 roots as PEM for Envoy and Istio",
		Example: `  bulwark identity bundle --format pem -o /etc/envoy/spiffe-roots.pem
  bulwark identity bundle > bundle.jwks`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "jwks" && format != "pem" {
				return fmt.Errorf("--format %q: want jwks or pem", format)
			}
			b, err := o.fetch(cmd.Context(), "/api/v1/identity/bundle?format="+format)
			if err != nil {
				return err
			}
			if out == "" {
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			tmp := out + ".tmp"
			if err := os.WriteFile(tmp, b, 0o644); err != nil {
				return fmt.Errorf("writing the bundle: %w", err)
			}
			return os.Rename(tmp, out)
		},
	}
	bundle.Flags().StringVar(&format, "format", "jwks", "jwks (the SPIFFE bundle) or pem (X.509 roots)")
	bundle.Flags().StringVarP(&out, "output", "o", "", "write to this file (atomically) instead of stdout")
	cmd.AddCommand(list, why, bundle)
	return cmd
}

// fetch GETs a public path of the server (no token: the bundle holds
// only public keys).
func (o *serverOptions) fetch(ctx context.Context, path string) ([]byte, error) {
	u := strings.TrimRight(o.server, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("calling %s: %w", u, err)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling %s: %w", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

func decisions(cmd *cobra.Command, o *serverOptions, container string) ([]trust.Decision, error) {
	q := url.Values{}
	if container != "" {
		q.Set("container", container)
	}
	var out struct {
		Decisions []trust.Decision `json:"decisions"`
	}
	raw, err := o.get(cmd.Context(), "/api/v1/identity/decisions", q, &out)
	if err != nil {
		return nil, err
	}
	if o.json {
		cmd.OutOrStdout().Write(raw)
	}
	return out.Decisions, nil
}

func state(d trust.Decision) string {
	switch {
	case !d.Issued:
		return "refused (" + d.Reason + ")"
	case d.Stale:
		return "certification changed, being decided again"
	case time.Now().After(d.Expiry):
		return "expired " + d.Expiry.Format(time.RFC3339)
	}
	return "issued until " + d.Expiry.Format(time.RFC3339)
}
