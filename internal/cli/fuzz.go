package cli

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/fuzz"
)

func newFuzzCmd(g *globalOptions) *cobra.Command {
	var (
		out        outputOptions
		openapi    string
		opts       fuzz.Options
		auth       []string
		grants     []string
		seed       uint64
		allowHosts []string
		operations string
		pins       []string
		tlsFiles   struct{ ca, cert, key string }
	)
	cmd := &cobra.Command{
		Use:   "fuzz --openapi FILE|URL --target URL",
		Short: "Fuzz an HTTP API from its OpenAPI document",
		Long: `Send valid, boundary and invalid requests generated from an OpenAPI 3.0/3.1
or Swagger 2.0 document to a running service, and report, by rule, the server
errors and dropped connections, undeclared status codes and schema mismatches,
slow responses, authentication bypasses (secured operations answering without
or with garbage credentials), leaked secrets and stack traces, and data-class
values (e-mail, card numbers, US SSN) from operations not granted them.
Each finding is shrunk to a minimal request and printed with a curl line;
the curl line reads the credentials of the n-th --auth from $BULWARK_FUZZ_AUTH_n.

Only loopback targets and the document's own servers are fuzzed unless
--allow-host names the host. The campaign is deterministic for a --seed.

--auth 'Header: value' gives a credential header; --auth Header alone reads
the value from $BULWARK_FUZZ_AUTH_n (n counting the --auth flags from 1), so
that the credential is not in the process list.

Exit codes: 0 no finding, 1 findings, 2 usage or runtime error.`,
		Example: `  BULWARK_FUZZ_AUTH_1="Bearer $TOKEN" bulwark fuzz --openapi http://127.0.0.1:8080/api/v1/openapi.json \
      --target http://127.0.0.1:8080 --auth Authorization --max-requests 2000 --format junit -o fuzz.xml
  bulwark fuzz --openapi api.yaml --target http://127.0.0.1:3000 --grant getUser:email --seed 7`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(out.format, out.formats); err != nil {
				return err
			}
			if openapi == "" || opts.Target == "" {
				return fmt.Errorf("--openapi and --target are required")
			}
			var err error
			if opts.Auth, err = parseAuth(auth, os.Getenv); err != nil {
				return err
			}
			if opts.Grants, err = parseGrants(grants); err != nil {
				return err
			}
			if opts.Params, err = parsePins(pins); err != nil {
				return err
			}
			if operations != "" {
				if opts.Operations, err = regexp.Compile(operations); err != nil {
					return fmt.Errorf("parsing --operations %q: %w", operations, err)
				}
			}
			opts.Seed, opts.AllowHosts, opts.Logger = seed, allowHosts, slog.Default()
			if opts.Client, err = fuzzClient(tlsFiles.ca, tlsFiles.cert, tlsFiles.key); err != nil {
				return err
			}
			opts.CurlArgs = curlTLSArgs(tlsFiles.ca, tlsFiles.cert, tlsFiles.key)
			docClient := *fuzz.DocumentClient(opts.Client, opts.Target, opts.Auth)
			docClient.Timeout = time.Minute
			spec, err := fuzz.Load(cmd.Context(), openapi, &docClient)
			if err != nil {
				return err
			}
			res, err := fuzz.Run(cmd.Context(), spec, opts)
			if err != nil {
				return err
			}
			if err := out.write(cmd, func(w io.Writer) error { return fuzz.Write(w, out.format, res) }); err != nil {
				return err
			}
			if n := len(res.Findings); n > 0 {
				return &exitError{code: ExitFindings, err: fmt.Errorf("%d fuzz findings in %d requests", n, res.Requests)}
			}
			return nil
		},
	}
	out.addFlags(cmd, fuzz.Formats)
	cmd.AddCommand(newFuzzCampaignCmd())
	f := cmd.Flags()
	f.StringVar(&openapi, "openapi", "", "the OpenAPI document: a file or an http(s) URL")
	f.StringVar(&opts.Target, "target", "", "the base URL the document's paths are appended to")
	f.StringArrayVar(&auth, "auth", nil, "a credential header, 'Header: value', or Header alone to read $BULWARK_FUZZ_AUTH_n (repeatable)")
	f.StringArrayVar(&grants, "grant", nil, "operation:class, a data class the operation may return (repeatable; classes: "+strings.Join(fuzz.DataClasses(), ", ")+")")
	f.Uint64Var(&seed, "seed", 0, "the random seed; the same seed repeats the same campaign")
	f.IntVar(&opts.MaxRequests, "max-requests", fuzz.DefaultMaxRequests, "stop after this many requests (shrinking and replays included)")
	f.DurationVar(&opts.Duration, "duration", 0, "stop after this long (0: only --max-requests bounds the campaign)")
	f.Float64Var(&opts.Rate, "rate", 0, "at most this many requests per second (0: no limit)")
	f.DurationVar(&opts.Slow, "slow", fuzz.DefaultSlow, "the response time budget of the slow-response rule")
	f.DurationVar(&opts.Timeout, "timeout", fuzz.DefaultTimeout, "the time one request may take")
	f.IntVar(&opts.Shrink, "shrink-requests", fuzz.DefaultShrink, "requests spent shrinking one finding (-1: no shrinking)")
	f.StringArrayVar(&allowHosts, "allow-host", nil, "fuzz this host although it is neither loopback nor a server of the document (repeatable)")
	f.StringVar(&operations, "operations", "", "fuzz only the operations this regular expression matches, by operationId or 'METHOD /path' ('^GET ' for read-only)")
	f.StringArrayVar(&pins, "param", nil, "name=value: send parameter name with this value in every request, never mutated (repeatable)")
	f.BoolVar(&opts.Secured, "secured", false, "treat every operation as secured: replay each without and with garbage credentials (for documents that require no security, as kube-apiserver's)")
	f.StringVar(&tlsFiles.ca, "cacert", "", "PEM file of the CA that signed an https target's certificate (default: the system roots)")
	f.StringVar(&tlsFiles.cert, "cert", "", "PEM client certificate for a target that authenticates by certificate (with --key)")
	f.StringVar(&tlsFiles.key, "key", "", "PEM private key of --cert")
	return cmd
}

// parsePins reads --param name=value values.
func parsePins(vals []string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range vals {
		name, value, ok := strings.Cut(v, "=")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("parsing --param %q: want name=value", v)
		}
		out[strings.TrimSpace(name)] = value
	}
	return out, nil
}

// curlTLSArgs are the curl options that reproduce the TLS settings, with
// absolute paths so the line works from another directory.
func curlTLSArgs(ca, cert, key string) []string {
	var out []string
	for _, f := range []struct{ flag, file string }{{"--cacert", ca}, {"--cert", cert}, {"--key", key}} {
		if f.file == "" {
			continue
		}
		if abs, err := filepath.Abs(f.file); err == nil {
			f.file = abs
		}
		out = append(out, f.flag, f.file)
	}
	return out
}

// fuzzClient is the campaign's HTTP client with the --cacert roots and
// the --cert/--key client certificate.
func fuzzClient(ca, cert, key string) (*http.Client, error) {
	t := fuzz.TLS{CAName: ca, CertName: cert}
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("--cert and --key go together")
	}
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{ca, &t.CA}, {cert, &t.Cert}, {key, &t.Key}} {
		if f.name == "" {
			continue
		}
		b, err := os.ReadFile(f.name)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f.name, err)
		}
		*f.dst = b
	}
	return fuzz.NewClient(t)
}

// parseAuth reads --auth values: "Header: value", or "Header" with the
// value in $BULWARK_FUZZ_AUTH_n.
func parseAuth(vals []string, getenv func(string) string) ([]fuzz.Pair, error) {
	out := make([]fuzz.Pair, 0, len(vals))
	for i, v := range vals {
		name, value, ok := strings.Cut(v, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok {
			env := fmt.Sprintf("%s%d", fuzz.AuthEnv, i+1)
			if value = getenv(env); value == "" {
				return nil, fmt.Errorf("parsing --auth %q: no value and $%s is empty", v, env)
			}
		}
		if name == "" || strings.ContainsAny(name, " \t\r\n") || value == "" || strings.ContainsAny(value, "\r\n") {
			return nil, fmt.Errorf("parsing --auth #%d: want 'Header: value' or Header", i+1)
		}
		out = append(out, fuzz.Pair{Name: name, Value: value})
	}
	return out, nil
}

// parseGrants reads --grant operation:class values (the class after the
// last colon, so an operation may be "GET /a/{b}").
func parseGrants(vals []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, v := range vals {
		i := strings.LastIndexByte(v, ':')
		if i <= 0 {
			return nil, fmt.Errorf("parsing --grant %q: want operation:class", v)
		}
		op, class := strings.TrimSpace(v[:i]), strings.TrimSpace(v[i+1:])
		if !slices.Contains(fuzz.DataClasses(), class) {
			return nil, fmt.Errorf("parsing --grant %q: unknown class %q (want %s)", v, class, strings.Join(fuzz.DataClasses(), ", "))
		}
		out[op] = append(out[op], class)
	}
	return out, nil
}
