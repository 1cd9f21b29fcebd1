package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// serverOptions name a running server and the token to call it with
// (clientOptions), for commands that read from it.
type serverOptions struct {
	clientOptions
	json bool
}

func (o *serverOptions) addFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&o.server, "server", "http://127.0.0.1:8480", "the Bulwark server's URL")
	f.StringVar(&o.token, "token", "", "API token (prefer $BULWARK_TOKEN or --token-file: a flag shows in the process list)")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding an API token (role viewer)")
	f.BoolVar(&o.json, "json", false, "print the server's JSON answer")
}

// get calls GET path?q on the server and decodes the answer into out; it
// returns the raw body too.
func (o *serverOptions) get(ctx context.Context, path string, q url.Values, out any) ([]byte, error) {
	cl, err := o.client()
	if err != nil {
		return nil, err
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var raw json.RawMessage
	if err := cl.do(ctx, http.MethodGet, path, nil, &raw); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("decoding the answer of %s: %w", path, err)
	}
	return raw, nil
}

func newRuntimeCmd() *cobra.Command {
	o := &serverOptions{}
	cmd := &cobra.Command{
		Use:   "runtime",
		Short: "What runs where, drift, and the responses taken (from a running server)",
		Long: `Ask a running bulwark server about the running inventory its agents report:
nodes, running workloads, drift events, the responses the runtime response
policy took, and which running workloads an advisory affects.`,
		Example: `  bulwark runtime nodes --server https://bulwark:8480 --token-file viewer.token
  bulwark runtime workloads --namespace shop
  bulwark runtime workloads --end-of-life
  bulwark runtime running CVE-2021-23337
  bulwark runtime responses`,
	}
	o.addFlags(cmd)
	cmd.AddCommand(newRuntimeNodesCmd(o), newRuntimeWorkloadsCmd(o), newRuntimeDriftCmd(o), newRuntimeResponsesCmd(o), newRuntimeRunningCmd(o))
	return cmd
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return orDash(d)
}

func newRuntimeNodesCmd(o *serverOptions) *cobra.Command {
	return &cobra.Command{
		Use: "nodes", Short: "Nodes: kernel, region, enforcement state, last heartbeat, host advisories", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct{ Nodes []fleet.Node }
			raw, err := o.get(cmd.Context(), "/api/v1/runtime/nodes", nil, &out)
			if err != nil || o.json {
				return printRaw(cmd, raw, err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tSTATE\tMODE\tKERNEL\tREGION\tCONTAINERS\tPACKAGES\tADVISORIES\tHEARTBEAT")
			for _, n := range out.Nodes {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", n.Name, n.State, n.Mode, orDash(n.Kernel), orDash(n.Region),
					n.Containers, n.Packages, n.Advisories, ago(n.LastHeartbeat))
			}
			return tw.Flush()
		},
	}
}

func printRaw(cmd *cobra.Command, raw []byte, err error) error {
	if err != nil {
		return err
	}
	_, err = cmd.OutOrStdout().Write(append(raw, '\n'))
	return err
}

func printWorkloads(cmd *cobra.Command, ws []fleet.Workload) error {
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNAMESPACE\tPOD\tCONTAINER\tIMAGE\tAPPLICATION\tCERTIFICATION\tDRIFTED")
	for _, w := range ws {
		app := orDash(w.Application)
		if w.EndOfLife {
			app += " (end of life)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", w.Node, orDash(w.PodNamespace), orDash(w.Pod),
			orDash(w.ContainerName), shortDigest(w.Image), app, orDash(w.Certification), ago(w.Drifted))
	}
	return tw.Flush()
}

func newRuntimeWorkloadsCmd(o *serverOptions) *cobra.Command {
	var node, ns, app, digest string
	var eol bool
	cmd := &cobra.Command{
		Use: "workloads", Short: "Running containers; --end-of-life lists the violations of end-of-life applications", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"limit": {"1000"}}
			for k, v := range map[string]string{"node": node, "namespace": ns, "application": app, "digest": digest} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if eol {
				q.Set("endOfLife", "true")
			}
			var out struct {
				Workloads []fleet.Workload
				Total     int
			}
			raw, err := o.get(cmd.Context(), "/api/v1/runtime/workloads", q, &out)
			if err != nil || o.json {
				return printRaw(cmd, raw, err)
			}
			if err := printWorkloads(cmd, out.Workloads); err != nil {
				return err
			}
			if eol && out.Total > 0 {
				return &exitError{code: ExitFindings, err: fmt.Errorf("%d workloads of end-of-life applications still run", out.Total)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "only on this node")
	cmd.Flags().StringVar(&ns, "namespace", "", "only pods of this namespace")
	cmd.Flags().StringVar(&app, "application", "", "only this application's")
	cmd.Flags().StringVar(&digest, "digest", "", "only those running this image digest")
	cmd.Flags().BoolVar(&eol, "end-of-life", false, "only workloads of end-of-life applications (exit 1 when any runs)")
	return cmd
}

func newRuntimeDriftCmd(o *serverOptions) *cobra.Command {
	var node, container, digest string
	cmd := &cobra.Command{
		Use: "drift", Short: "Drift events: execs the agents refused or reported, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"node": node, "container": container, "digest": digest} {
				if v != "" {
					q.Set(k, v)
				}
			}
			var out struct{ Events []store.RuntimeEvent }
			raw, err := o.get(cmd.Context(), "/api/v1/runtime/events", q, &out)
			if err != nil || o.json {
				return printRaw(cmd, raw, err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tNODE\tCONTAINER\tVERDICT\tPATH\tREASON\tPROCESS TREE")
			for _, e := range out.Events {
				tree := e.Tree
				if tree == "" {
					tree = strconv.FormatInt(e.PID, 10)
				}
				fmt.Fprintf(tw, "%s\t%s\t%.12s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), e.Node, e.Container, e.Verdict, e.Path, e.Reason, tree)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "only on this node")
	cmd.Flags().StringVar(&container, "container", "", "only in this container (id)")
	cmd.Flags().StringVar(&digest, "digest", "", "only in containers of this image digest")
	return cmd
}

func newRuntimeResponsesCmd(o *serverOptions) *cobra.Command {
	var ns string
	cmd := &cobra.Command{
		Use: "responses", Short: "Responses taken (or skipped, and why), newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if ns != "" {
				q.Set("namespace", ns)
			}
			var out struct{ Responses []store.Response }
			raw, err := o.get(cmd.Context(), "/api/v1/runtime/responses", q, &out)
			if err != nil || o.json {
				return printRaw(cmd, raw, err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTIME\tTRIGGER\tACTION\tSTATE\tNAMESPACE\tPOD\tOWNER\tDETAIL")
			for _, r := range out.Responses {
				state := r.State
				if r.DryRun {
					state += " (dry run)"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Created.Format(time.RFC3339), r.Trigger, r.Action, state,
					orDash(r.Namespace), orDash(r.Pod), orDash(r.Owner), r.Detail)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&ns, "namespace", "", "only in this namespace")
	return cmd
}

func newRuntimeRunningCmd(o *serverOptions) *cobra.Command {
	return &cobra.Command{
		Use: "running ADVISORY", Short: "Which running pods on which nodes an advisory affects, and which hosts (exit 1 when any)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out fleet.Exposure
			raw, err := o.get(cmd.Context(), "/api/v1/vulnerabilities/"+url.PathEscape(args[0])+"/running", nil, &out)
			if err != nil {
				return err
			}
			if o.json {
				printRaw(cmd, raw, nil)
			} else {
				if err := printWorkloads(cmd, out.Workloads); err != nil {
					return err
				}
				for _, h := range out.Hosts {
					fmt.Fprintf(cmd.OutOrStdout(), "host %s (kernel %s, region %s): its own packages are affected\n", h.Name, orDash(h.Kernel), orDash(h.Region))
				}
				if out.Pending > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "note: %d running digests or nodes are not matched yet\n", out.Pending)
				}
			}
			if len(out.Workloads)+len(out.Hosts) > 0 {
				return &exitError{code: ExitFindings, err: fmt.Errorf("%s: %d running workloads on %d nodes, %d hosts affected",
					args[0], len(out.Workloads), len(out.Nodes), len(out.Hosts))}
			}
			return nil
		},
	}
}
