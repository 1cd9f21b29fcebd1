package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/governance"
)

// newGovernanceCmd is `bulwark governance`.
func newGovernanceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "governance",
		Short: "Which services reach which data, under which regulation, in which region",
		Args:  cobra.NoArgs,
	}
	var (
		c          clientOptions
		regulation string
		format     string
	)
	report := &cobra.Command{
		Use:   "report",
		Short: "The governance report: per regulation and data class, who can reach it, who did, where, and the violations",
		Long: `Print the server's governance report (docs/governance.md): for each regulation
and data class of the catalogue, the data stores holding it, the applications
granted it, the secrets holding it, the services observed reaching it with
their region and count, and every access without a grant or outside the
allowed regions.`,
		Example: `  bulwark governance report --regulation gdpr
  bulwark governance report --format csv > access.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(governance.Formats, format) {
				return fmt.Errorf("--format %q: want %s", format, strings.Join(governance.Formats, ", "))
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			var r governance.Report
			path := "/api/v1/governance/report"
			if regulation != "" {
				path += "?regulation=" + url.QueryEscape(regulation)
			}
			if err := cl.do(cmd.Context(), http.MethodGet, path, nil, &r); err != nil {
				return err
			}
			return r.Render(cmd.OutOrStdout(), format)
		},
	}
	c.addFlags(report)
	report.Flags().StringVar(&regulation, "regulation", "", "only this regulation (gdpr, hipaa, pci-dss, ccpa, lgpd, pipeda)")
	report.Flags().StringVar(&format, "format", "table", "table, json or csv")
	cmd.AddCommand(report)
	return cmd
}
