package cli

import (
	"encoding/json"
	"errors"
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

// apiOptions say which server the CLI asks and with which token.
type apiOptions struct{ server, tokenFile string }

func (o *apiOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.server, "server", "http://127.0.0.1:8480", "the bulwark server's URL (else $BULWARK_SERVER)")
	cmd.Flags().StringVar(&o.tokenFile, "token-file", "", "file holding an API token of role viewer (else $BULWARK_TOKEN)")
}

// get asks path of the server as a bearer of the token and decodes the
// JSON answer into out.
func (o *apiOptions) get(cmd *cobra.Command, path string, out any) error {
	base := o.server
	if !cmd.Flags().Changed("server") && os.Getenv("BULWARK_SERVER") != "" {
		base = os.Getenv("BULWARK_SERVER")
	}
	token := os.Getenv("BULWARK_TOKEN")
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return fmt.Errorf("reading --token-file: %w", err)
		}
		token = string(b)
	}
	if token = strings.TrimSpace(token); token == "" {
		return errors.New("no API token: --token-file or $BULWARK_TOKEN")
	}
	u := strings.TrimRight(base, "/") + path
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("asking %q: %w", u, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("asking %q: %w", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the answer of %q: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("asking %q: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

// newIdentityCmd is `bulwark identity`: the server's identity decisions.
func newIdentityCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Workload identities the server issued or refused, and why",
		Args:  cobra.NoArgs,
	}
	var o apiOptions
	list := &cobra.Command{
		Use:     "list",
		Short:   "The last identity decision of every container",
		Example: `  bulwark identity list --server https://bulwark.example:8480 --token-file viewer.token`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ds, err := decisions(cmd, &o, "")
			if err != nil {
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
	o.addFlags(list)
	var wo apiOptions
	why := &cobra.Command{
		Use:   "why CONTAINER",
		Short: "Why a container holds its identity or not (exit 1 when it holds none)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ds, err := decisions(cmd, &wo, args[0])
			if err != nil {
				return err
			}
			if len(ds) == 0 {
				return fmt.Errorf("no identity decision for container %q on this server (its agent never asked)", args[0])
			}
			held := false
			for _, d := range ds {
				fmt.Fprintf(cmd.OutOrStdout(), "%s/%s  image %s\n  %s\n  %s", d.Node, d.Container, d.Image, d.SpiffeID, state(d))
				if d.Detail != "" {
					fmt.Fprintf(cmd.OutOrStdout(), ": %s", d.Detail)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "\n  decided %s\n", d.Time.Format(time.RFC3339))
				held = held || (d.Issued && !d.Stale && time.Now().Before(d.Expiry))
			}
			if !held {
				return &exitError{code: 1, err: fmt.Errorf("container %s holds no identity", args[0])}
			}
			return nil
		},
	}
	wo.addFlags(why)
	cmd.AddCommand(list, why)
	return cmd
}

func decisions(cmd *cobra.Command, o *apiOptions, container string) ([]trust.Decision, error) {
	path := "/api/v1/identity/decisions"
	if container != "" {
		path += "?container=" + url.QueryEscape(container)
	}
	var out struct {
		Decisions []trust.Decision `json:"decisions"`
	}
	if err := o.get(cmd, path, &out); err != nil {
		return nil, err
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

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
