package cli

import (
	"fmt"
	"net/url"
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
	cmd.AddCommand(list, why)
	return cmd
}

func decisions(cmd *cobra.Command, o *serverOptions, container string) ([]trust.Decision, error) {
	q := url.Values{}
	if container != "" {
		q.Set("container", container)
	}
	var out struct {
		Decisions []trust.Decision `json:"decisions"`
	}
	if _, err := o.get(cmd.Context(), "/api/v1/identity/decisions", q, &out); err != nil {
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
