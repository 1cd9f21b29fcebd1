package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/fuzz"
	"github.com/bulwark-sec/bulwark/internal/fuzzcampaign"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// newFuzzCampaignCmd is `bulwark fuzz campaign`: the server-run campaigns
// of docs/fuzz.md, through the server's API.
func newFuzzCampaignCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "campaign",
		Short: "Register an application's API with the server and run fuzz campaigns there",
	}
	cmd.AddCommand(newFuzzRegisterCmd(), newFuzzStartCmd(), newFuzzShowCmd())
	return cmd
}

func appPath(app string) string { return "/api/v1/applications/" + url.PathEscape(app) }

func newFuzzRegisterCmd() *cobra.Command {
	var (
		c   clientOptions
		req api.APIRegistrationRequest
	)
	cmd := &cobra.Command{
		Use:   "register APPLICATION --openapi URL --target URL",
		Short: "Register (or replace) the HTTP API the server fuzzes for an application (role admin)",
		Long: `The credential header's value is read from $BULWARK_FUZZ_AUTH_1 (--auth-header
names the header), sealed by the server and never shown again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			if req.AuthHeader != "" {
				if req.AuthValue = os.Getenv(fuzz.AuthEnv + "1"); req.AuthValue == "" {
					return fmt.Errorf("--auth-header %s: $%s1 is empty", req.AuthHeader, fuzz.AuthEnv)
				}
			}
			var view api.APIRegistrationView
			if err := cl.do(cmd.Context(), http.MethodPut, appPath(args[0])+"/api", req, &view); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "application %s: API %s registered (allowed hosts %v, credential %t)\n",
				args[0], view.Target, view.AllowedHosts, view.HasCredential)
			return nil
		},
	}
	c.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&req.OpenAPI, "openapi", "", "URL of the API's OpenAPI document")
	f.StringVar(&req.Target, "target", "", "base URL of the API")
	f.StringArrayVar(&req.AllowedHosts, "allow-host", nil, "host or host:port a campaign may reach (default: the hosts of --openapi and --target; repeatable)")
	f.StringVar(&req.AuthHeader, "auth-header", "", "credential header sent with every request; its value from $"+fuzz.AuthEnv+"1")
	return cmd
}

func newFuzzStartCmd() *cobra.Command {
	var (
		c    clientOptions
		out  outputOptions
		opts fuzzcampaign.Options
		pins []string
		wait time.Duration
	)
	cmd := &cobra.Command{
		Use:   "start APPLICATION",
		Short: "Start a fuzz campaign on the server against the application's registered API (role operator)",
		Long: `Prints the campaign's id; with --wait, waits for it to end and writes its report
as bulwark fuzz does, with the same exit codes (0 no finding, 1 findings, 2 failed).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(out.format, out.formats); err != nil {
				return err
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			if opts.Params, err = parsePins(pins); err != nil {
				return err
			}
			var camp store.FuzzCampaign
			if err := cl.do(cmd.Context(), http.MethodPost, appPath(args[0])+"/fuzz-campaigns", opts, &camp); err != nil {
				return err
			}
			if wait <= 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "fuzz campaign %d of %s queued\n", camp.ID, args[0])
				return nil
			}
			path := appPath(args[0]) + "/fuzz-campaigns/" + strconv.FormatInt(camp.ID, 10)
			deadline := time.Now().Add(wait)
			for camp.State != store.CampaignDone && camp.State != store.CampaignFailed {
				if time.Now().After(deadline) {
					return fmt.Errorf("fuzz campaign %d still %s after %s", camp.ID, camp.State, wait)
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(time.Second):
				}
				if err := cl.do(cmd.Context(), http.MethodGet, path, nil, &camp); err != nil {
					return err
				}
			}
			return writeCampaign(cmd, &out, camp)
		},
	}
	c.addFlags(cmd)
	out.addFlags(cmd, fuzz.Formats)
	f := cmd.Flags()
	f.IntVar(&opts.MaxRequests, "max-requests", 0, "the campaign's request budget (0: the server's default, 500)")
	f.IntVar(&opts.DurationSeconds, "duration-seconds", 0, "the campaign's time budget in seconds (0: the server's default, 120)")
	f.Float64Var(&opts.Rate, "rate", 0, "requests per second (0: the server's default, 50)")
	f.Uint64Var(&opts.Seed, "seed", 0, "the random seed")
	f.StringVar(&opts.Operations, "operations", "", "fuzz only the operations this regular expression matches")
	f.StringArrayVar(&pins, "param", nil, "name=value: pin a parameter (repeatable)")
	f.BoolVar(&opts.Secured, "secured", false, "replay every operation without and with garbage credentials")
	f.DurationVar(&wait, "wait", 0, "wait this long for the campaign to end and write its report (0: do not wait)")
	return cmd
}

func newFuzzShowCmd() *cobra.Command {
	var (
		c   clientOptions
		out outputOptions
	)
	cmd := &cobra.Command{
		Use:   "show APPLICATION ID",
		Short: "Write a campaign's report, with bulwark fuzz's exit codes (role viewer)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(out.format, out.formats); err != nil {
				return err
			}
			id, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil || id <= 0 {
				return fmt.Errorf("campaign id %q: want a positive number", args[1])
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			var camp store.FuzzCampaign
			if err := cl.do(cmd.Context(), http.MethodGet, appPath(args[0])+"/fuzz-campaigns/"+args[1], nil, &camp); err != nil {
				return err
			}
			return writeCampaign(cmd, &out, camp)
		},
	}
	c.addFlags(cmd)
	out.addFlags(cmd, fuzz.Formats)
	return cmd
}

// writeCampaign writes a finished campaign's report; an unfinished or
// failed campaign is an error (exit 2), findings exit 1.
func writeCampaign(cmd *cobra.Command, out *outputOptions, camp store.FuzzCampaign) error {
	switch camp.State {
	case store.CampaignFailed:
		return fmt.Errorf("fuzz campaign %d failed: %s", camp.ID, camp.Error)
	case store.CampaignDone:
	default:
		return fmt.Errorf("fuzz campaign %d is %s", camp.ID, camp.State)
	}
	var res fuzz.Result
	if err := json.Unmarshal(camp.Report, &res); err != nil {
		return fmt.Errorf("reading the report of campaign %d: %w", camp.ID, err)
	}
	if err := out.write(cmd, func(w io.Writer) error { return fuzz.Write(w, out.format, &res) }); err != nil {
		return err
	}
	if n := len(res.Findings); n > 0 {
		return &exitError{code: ExitFindings, err: fmt.Errorf("%d fuzz findings in %d requests (campaign %d)", n, res.Requests, camp.ID)}
	}
	return nil
}
