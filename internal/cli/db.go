package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/bulwark-sec/bulwark/internal/sign"
	"github.com/google/go-containerregistry/pkg/name"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/vulndb"
)

// dbOptions are the flags every db subcommand shares.
type dbOptions struct {
	path    string
	dataDir string
}

// serverAdvisoryDB is the advisory database's file in the server's data
// directory: bulwark server's default --advisory-db.
const serverAdvisoryDB = "osv.db"

func (o *dbOptions) addFlags(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&o.path, "db", "", "advisory database file (default $XDG_CACHE_HOME/bulwark/vulndb/osv.db, this CLI's own)")
	cmd.PersistentFlags().StringVar(&o.dataDir, "data-dir", "", "use the server's advisory database: DIR/"+serverAdvisoryDB+" of bulwark server --data-dir DIR")
}

func (o *dbOptions) resolve() (string, error) {
	switch {
	case o.path != "" && o.dataDir != "":
		return "", errors.New("--db and --data-dir both name the advisory database: give one")
	case o.dataDir != "":
		return filepath.Join(o.dataDir, serverAdvisoryDB), nil
	case o.path != "":
		return o.path, nil
	}
	return vulndb.DefaultPath()
}

// Which advisory database a db command works on (db status says it).
const (
	dbOfServer = "server" // --data-dir: the one bulwark server matches against
	dbOfFile   = "file"   // --db FILE
	dbOfCLI    = "cli"    // the default: bulwark scan's, not the server's
)

func (o *dbOptions) which() string {
	switch {
	case o.dataDir != "":
		return dbOfServer
	case o.path != "":
		return dbOfFile
	}
	return dbOfCLI
}

// open opens (creating when needed) the database, progress going where g
// says.
func (o *dbOptions) open(g *globalOptions) (*vulndb.DB, error) {
	path, err := o.resolve()
	if err != nil {
		return nil, err
	}
	db, err := vulndb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening advisory database: %w", err)
	}
	db.Progress = g.progress()
	// The server's database: imports go in its change log too, so the
	// server re-judges its images against them (at its next advisory
	// update or start).
	db.TrackChanges = o.dataDir != ""
	return db, nil
}

// openExisting opens the database, refusing to create an empty one.
func (o *dbOptions) openExisting(g *globalOptions) (*vulndb.DB, error) {
	path, err := o.resolve()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no advisory database at %s: run bulwark db update (online), db import FILE or db pull REF (offline) first", path)
	}
	return o.open(g)
}

func newDBCmd(g *globalOptions) *cobra.Command {
	var o dbOptions
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Manage the advisory database",
		Long: `Manage the local database of OSV advisories that bulwark scan matches against.

Update it from OSV's per-ecosystem exports (db update), import exports or
directories of OSV JSON (db import), and move it to air-gapped machines as a
file (db export) or an OCI artifact (db push, db pull).`,
		Args: cobra.NoArgs,
	}
	o.addFlags(cmd)
	cmd.AddCommand(
		newDBUpdateCmd(g, &o),
		newDBImportCmd(g, &o),
		newDBStatusCmd(g, &o),
		newDBExportCmd(g, &o),
		newDBPushCmd(g, &o),
		newDBPullCmd(g, &o),
	)
	return cmd
}

func newDBUpdateCmd(g *globalOptions, o *dbOptions) *cobra.Command {
	var (
		sources    []string
		maxArchive int64
	)
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Update the advisory database from OSV's exports",
		Long: `Download and import the OSV exports, by default OSV's all.zip of each of:
` + strings.Join(vulndb.DefaultEcosystems, ", ") + `.

Only records whose modified time changed are rewritten, and an export that did
not change since the last update (same ETag) is not downloaded again. Each
source is imported in one transaction: a failed or interrupted update leaves
the previous data in place.`,
		Example: `  bulwark db update
  bulwark db update --source https://osv-vulnerabilities.storage.googleapis.com/Go/all.zip
  bulwark db update --source Go=https://mirror.example.com/osv/Go/all.zip --source ./osv/npm/all.zip`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srcs := vulndb.DefaultSources()
			if len(sources) > 0 {
				srcs = parseSources(sources)
			}
			return importSources(cmd, g, o, srcs, maxArchive)
		},
	}
	cmd.Flags().StringSliceVar(&sources, "source", nil, "export to read instead of the defaults: a URL or path of an all.zip, or a directory of JSON records; NAME=LOCATION names the source (repeatable)")
	cmd.Flags().Int64Var(&maxArchive, "max-archive-size", vulndb.DefaultMaxArchiveSize, "refuse a download or zip larger than this many bytes (uncompressed)")
	return cmd
}

func newDBImportCmd(g *globalOptions, o *dbOptions) *cobra.Command {
	var maxArchive int64
	cmd := &cobra.Command{
		Use:   "import PATH|URL ...",
		Short: "Import OSV exports: all.zip files, directories of JSON records, URLs",
		Long: `Import OSV records from zip files (OSV's all.zip export of an ecosystem),
directories of *.json records (read recursively) or http(s) URLs of zips.

Each argument is one source, named after the folder of an all.zip
(osv/Go/all.zip is "Go") or the file or directory name; NAME=LOCATION names it.
A record that disappears from a source is removed on the next import of that
source. Malformed records are skipped and listed on stderr.`,
		Example: `  bulwark db import ./osv/Debian/all.zip ./osv/Go/all.zip ./osv/npm/all.zip
  bulwark db import ghsa=./advisory-database/advisories`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return importSources(cmd, g, o, parseSources(args), maxArchive)
		},
	}
	cmd.Flags().Int64Var(&maxArchive, "max-archive-size", vulndb.DefaultMaxArchiveSize, "refuse a download or zip larger than this many bytes (uncompressed)")
	return cmd
}

func parseSources(args []string) []vulndb.Source {
	out := make([]vulndb.Source, len(args))
	for i, a := range args {
		out[i] = vulndb.ParseSource(a)
	}
	return out
}

// importSources imports each source in turn: a summary line per source on
// stdout, skipped records on stderr. A failed source does not stop the
// others; the command then fails.
func importSources(cmd *cobra.Command, g *globalOptions, o *dbOptions, srcs []vulndb.Source, maxArchive int64) error {
	db, err := o.open(g)
	if err != nil {
		return err
	}
	defer db.Close()
	db.MaxArchiveSize = maxArchive
	stdout := cmd.OutOrStdout()
	var failed []string
	for _, src := range srcs {
		res, err := db.Import(cmd.Context(), src)
		if err != nil {
			if cmd.Context().Err() != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "bulwark: %v\n", err)
			failed = append(failed, src.Name)
			continue
		}
		fmt.Fprintln(stdout, res)
		if !g.quiet {
			for _, s := range res.Skips {
				fmt.Fprintf(g.stderr, "warning: %s: skipped %s\n", src.Name, s)
			}
			if more := res.Skipped - len(res.Skips); more > 0 {
				fmt.Fprintf(g.stderr, "warning: %s: skipped %d more records\n", src.Name, more)
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d sources failed (%s); the data they had before is kept", len(failed), len(srcs), strings.Join(failed, ", "))
	}
	return nil
}

// statusView is the json form of db status.
type statusView struct {
	vulndb.Status
	AgeSeconds int64 `json:"ageSeconds"`
	Stale      bool  `json:"stale"`
	// Of says whose database it is: "server" (--data-dir), "file" (--db)
	// or "cli" (the default, bulwark scan's, not the server's).
	Of      string `json:"of"`
	DataDir string `json:"dataDir,omitempty"`
}

func newDBStatusCmd(g *globalOptions, o *dbOptions) *cobra.Command {
	var (
		out    outputOptions
		maxAge time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the advisory database's sources, record counts, size and age",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(out.format, out.formats); err != nil {
				return err
			}
			db, err := o.openExisting(g)
			if err != nil {
				return err
			}
			defer db.Close()
			st, err := db.Status(cmd.Context())
			if err != nil {
				return err
			}
			v := statusView{Status: st, AgeSeconds: int64(st.Age / time.Second), Of: o.which(), DataDir: o.dataDir}
			v.Stale = len(st.Sources) == 0 || (maxAge > 0 && st.Age > maxAge)
			if v.Stale && !g.quiet {
				if len(st.Sources) == 0 {
					fmt.Fprintf(g.stderr, "warning: the advisory database is empty; run bulwark db update\n")
				} else {
					fmt.Fprintf(g.stderr, "warning: the advisory database was last updated %s ago (older than --max-age %s); run bulwark db update\n", roundAge(st.Age), maxAge)
				}
			}
			return out.write(cmd, func(w io.Writer) error {
				if out.format == "json" {
					enc := json.NewEncoder(w)
					enc.SetIndent("", "  ")
					return enc.Encode(v)
				}
				return writeStatusTable(w, st, describeDB(o))
			})
		},
	}
	out.addFlags(cmd, []string{"table", "json"})
	cmd.Flags().DurationVar(&maxAge, "max-age", 72*time.Hour, "warn when the newest update is older than this (0: never)")
	return cmd
}

// describeDB says whose advisory database o names, for db status.
func describeDB(o *dbOptions) string {
	switch o.which() {
	case dbOfServer:
		return "the server's (bulwark server --data-dir " + o.dataDir + ")"
	case dbOfFile:
		return "the file given with --db"
	}
	return "this CLI's own (bulwark scan's default); the server keeps its own in its --data-dir: see --data-dir"
}

func writeStatusTable(w io.Writer, st vulndb.Status, of string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "database:\t%s (%s, schema %d)\n", st.Path, humanBytes(st.Size), st.SchemaVersion)
	fmt.Fprintf(tw, "of:\t%s\n", of)
	fmt.Fprintf(tw, "records:\t%d (%d withdrawn), %d packages\n", st.Records, st.Withdrawn, st.Packages)
	if st.Updated.IsZero() {
		fmt.Fprintf(tw, "updated:\tnever\n")
	} else {
		fmt.Fprintf(tw, "updated:\t%s (%s ago)\n", st.Updated.Format(time.RFC3339), roundAge(st.Age))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Sources) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tRECORDS\tSKIPPED\tUPDATED\tURL")
	for _, s := range st.Sources {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", s.Name, s.Records, s.Skipped, s.Updated.Format(time.RFC3339), s.URL)
	}
	return tw.Flush()
}

func roundAge(d time.Duration) time.Duration {
	if d > time.Hour {
		return d.Round(time.Hour)
	}
	return d.Round(time.Second)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func newDBExportCmd(g *globalOptions, o *dbOptions) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "export -o FILE",
		Short: "Write a copy of the advisory database to a file",
		Long: `Write a consistent, compacted copy of the advisory database (a SQLite file) to
FILE ("-" for stdout). Copy it to an air-gapped machine and use it there with
--db FILE, or put it in place of the default database.`,
		Example: `  bulwark db export -o osv.db`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("db export needs -o FILE (or -o - for stdout)")
			}
			db, err := o.openExisting(g)
			if err != nil {
				return err
			}
			defer db.Close()
			dest := outputOptions{output: file}
			if file == "-" {
				dest.output = ""
			}
			return dest.write(cmd, func(w io.Writer) error {
				if f, ok := w.(*os.File); ok && dest.output != "" {
					f.Chmod(0o644) // a database to share, not a private report
				}
				return db.Export(cmd.Context(), w)
			})
		},
	}
	cmd.Flags().StringVarP(&file, "output", "o", "", "file to write")
	return cmd
}

// registryFlags are the flags of push and pull.
type registryFlags struct {
	insecure bool
}

func (r *registryFlags) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&r.insecure, "insecure", false, "allow plain HTTP to the registry (localhost and 127.0.0.1 always may)")
}

func newDBPushCmd(g *globalOptions, o *dbOptions) *cobra.Command {
	var (
		r       registryFlags
		keyFile string
	)
	cmd := &cobra.Command{
		Use:   "push REF",
		Short: "Push the advisory database to a registry as an OCI artifact",
		Long: `Push a snapshot of the advisory database to REF as an OCI artifact: config
` + string(vulndb.ConfigMediaType) + `, one layer
` + string(vulndb.LayerMediaType) + `.
Credentials come from the Docker config and its credential helpers.`,
		Example: `  bulwark db push registry.internal/security/bulwark-db:latest --key bulwark.key`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var signer sign.Signer
			if keyFile != "" {
				pass, err := readPassphrase(cmd, g, false)
				if err != nil {
					return err
				}
				if signer, err = sign.LoadKeyFile(keyFile, pass); err != nil {
					return err
				}
			}
			db, err := o.openExisting(g)
			if err != nil {
				return err
			}
			defer db.Close()
			a, err := db.Push(cmd.Context(), args[0], vulndb.RegistryOptions{Insecure: r.insecure})
			if err != nil {
				return err
			}
			if signer != nil {
				digest, err := name.NewDigest(a.Ref+"@"+a.Digest, nameOptions(r.insecure)...)
				if err != nil {
					return err
				}
				if err := sign.SignImage(cmd.Context(), digest, signer, map[string]string{"bulwark.dev/artifact": "vulndb"}, sign.Options{Insecure: r.insecure}); err != nil {
					return fmt.Errorf("signing %s: %w", digest, err)
				}
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "pushed %s@%s: %d records, %s%s\n", a.Ref, a.Digest, a.Config.Records, humanBytes(a.Size),
				map[bool]string{true: ", signed", false: ""}[signer != nil])
			return err
		},
	}
	r.addFlags(cmd)
	cmd.Flags().StringVar(&keyFile, "key", "", "sign the pushed artifact with this private key (cosign-compatible signature)")
	return cmd
}

func newDBPullCmd(g *globalOptions, o *dbOptions) *cobra.Command {
	var (
		r       registryFlags
		keyFile string
	)
	cmd := &cobra.Command{
		Use:   "pull REF",
		Short: "Replace the advisory database with one pulled from a registry",
		Long: `Pull the advisory database artifact at REF (see db push), check its digest
and its integrity, and put it in place of the local database in one rename.`,
		Example: `  bulwark db pull registry.internal/security/bulwark-db:latest --key bulwark.pub`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := o.resolve()
			if err != nil {
				return err
			}
			ref := args[0]
			if keyFile != "" {
				// verify the signature of the digest the tag names now, then
				// pull exactly that digest
				pem, err := os.ReadFile(keyFile)
				if err != nil {
					return fmt.Errorf("reading public key: %w", err)
				}
				pub, err := sign.LoadPublicKey(pem)
				if err != nil {
					return err
				}
				v, err := sign.Verify(cmd.Context(), ref, pub, sign.Requirements{}, sign.Options{Insecure: r.insecure})
				var ve *sign.VerificationError
				if errors.As(err, &ve) {
					return &exitError{code: ExitFindings, err: fmt.Errorf("refusing the advisory database %s: %w", args[0], err)}
				}
				if err != nil {
					return err
				}
				ref = v.Repository + "@" + v.Digest
			}
			a, err := vulndb.Pull(cmd.Context(), ref, path, vulndb.RegistryOptions{Insecure: r.insecure})
			if err != nil {
				return err
			}
			// the reference asked for and the digest pulled (once: a
			// verified pull already pulled by digest)
			pulled := args[0] + "@" + a.Digest
			if strings.Contains(args[0], "@") {
				pulled = args[0]
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "pulled %s into %s: %d records, created %s\n",
				pulled, path, a.Config.Records, a.Config.Created.Format(time.RFC3339))
			return err
		},
	}
	r.addFlags(cmd)
	cmd.Flags().StringVar(&keyFile, "key", "", "require a signature by this public key on the artifact before replacing the database")
	return cmd
}

func nameOptions(insecure bool) []name.Option {
	if insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}
