package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/assess"
	"github.com/bulwark-sec/bulwark/internal/catalog"
	"github.com/bulwark-sec/bulwark/internal/image"
	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/vulndb"
)

// gateOptions are the flags of the commands that judge an image.
type gateOptions struct {
	img        imageOptions
	policyFile string
	dbPath     string
	noDB       bool
	vexFiles   []string
}

func (o *gateOptions) addFlags(cmd *cobra.Command) {
	o.img.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.policyFile, "policy", "", "policy file (YAML); without it the built-in rules run with their defaults")
	f.StringVar(&o.dbPath, "db", "", "advisory database (default $XDG_CACHE_HOME/bulwark/vulndb/osv.db)")
	f.BoolVar(&o.noDB, "no-db", false, "judge without vulnerability data (the vulnerabilities rule sees no finding)")
	f.StringSliceVar(&o.vexFiles, "vex", nil, "OpenVEX document(s) applied before the policy")
	f.BoolVar(&o.img.keepLayers, "keep-layers", false, "decompress compressed layers whole into the layer cache and keep them (debugging) instead of one streaming pass that keeps only what the catalogers read and scans for secrets on the way")
}

// run opens source and assesses it; close releases the advisory database.
func (o *gateOptions) run(ctx context.Context, g *globalOptions, source string) (*assess.Assessment, error) {
	var p *policy.Policy
	var err error
	if o.policyFile != "" {
		if p, err = policy.Load(o.policyFile); err != nil {
			return nil, err
		}
	} else if p, err = policy.Parse("(built-in defaults)", nil); err != nil {
		return nil, err
	}
	opts := assess.Options{
		Policy:  p,
		Catalog: catalog.Options{MaxFileSize: o.img.maxFileSize, TempDir: o.img.cacheDir},
		Image:   o.img.imageOpts(g),
		Now:     time.Now(),
	}
	if opts.VEX, err = match.LoadVEX(o.vexFiles...); err != nil {
		return nil, err
	}
	if !o.img.keepLayers {
		if opts.Image, err = opts.Streaming(); err != nil {
			return nil, err
		}
	}
	if !o.noDB {
		path := o.dbPath
		if path == "" {
			if path, err = vulndb.DefaultPath(); err != nil {
				return nil, err
			}
		}
		db, err := openExistingDB(path)
		if err != nil {
			return nil, fmt.Errorf("%w (or pass --no-db)", err)
		}
		defer db.Close()
		opts.Advisories = db
	}
	img, err := image.Open(ctx, source, opts.Image)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	if img.Source.Kind == image.KindRegistry {
		opts.Repository, _, _ = strings.Cut(img.Source.Name, "@")
	}
	a, err := assess.Run(ctx, img, opts)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", source, err)
	}
	return a, nil
}

func newPolicyCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Judge images against the gold-image policy",
	}
	cmd.AddCommand(newPolicyCheckCmd(g), newPolicyInitCmd())
	return cmd
}

func newPolicyCheckCmd(g *globalOptions) *cobra.Command {
	var (
		gate gateOptions
		out  outputOptions
	)
	cmd := &cobra.Command{
		Use:   "check SOURCE",
		Short: "Evaluate the policy on an image and list every rule with its evidence",
		Long: `Evaluate the built-in rules (vulnerabilities, package pins, approved base
images, image age, non-root, lean image, required labels, secrets) and the
policy's own CEL rules on an image.

Exit codes: 0 the image passes, 1 a rule fails, 2 usage or runtime error.`,
		Example: `  bulwark policy check registry.example.com/team/app:1.4 --policy gold.yaml
  bulwark policy check ./image.tar --policy gold.yaml --format sarif -o policy.sarif`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(out.format, out.formats); err != nil {
				return err
			}
			a, err := gate.run(cmd.Context(), g, args[0])
			if err != nil {
				return err
			}
			if err := out.write(cmd, func(w io.Writer) error { return policy.Encode(w, a.Decision, out.format) }); err != nil {
				return err
			}
			if !a.Decision.Pass {
				return &exitError{code: ExitFindings, err: fmt.Errorf("%s fails the policy: %s", args[0], strings.Join(a.Decision.Failed(), ", "))}
			}
			return nil
		},
	}
	gate.addFlags(cmd)
	out.addFlags(cmd, policy.Formats)
	return cmd
}

func newPolicyInitCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a commented starting policy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output == "" {
				_, err := io.WriteString(cmd.OutOrStdout(), policy.Example)
				return err
			}
			f, err := os.OpenFile(output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s exists and is not overwritten: remove it or give another -o", output)
			}
			if err != nil {
				return fmt.Errorf("writing policy: %w", err)
			}
			if _, err := io.WriteString(f, policy.Example); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file (refuses to overwrite)")
	return cmd
}
