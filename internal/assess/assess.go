package assess

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-sec/bulwark/internal/catalog"
	"github.com/bulwark-sec/bulwark/internal/image"
	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/secrets"
)

// Options configure an assessment.
type Options struct {
	Policy *policy.Policy
	// Advisories answer vulnerability lookups; nil skips matching (the
	// vulnerabilities rule then sees no finding, and says so).
	Advisories match.Source
	VEX        *match.VEX
	Catalog    catalog.Options
	Secrets    secrets.Options
	// Repository is the image's repository, for waiver globs.
	Repository string
	// Image opens approved base images to read their layer chains.
	Image image.Options
	Now   time.Time
}

// Assessment is everything known about one image.
type Assessment struct {
	SBOM     *sbom.SBOM
	Scan     *match.Result
	Secrets  []secrets.Finding
	Decision *policy.Decision
}

// Run assesses an opened image.
func Run(ctx context.Context, img *image.Image, opts Options) (*Assessment, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	s, err := catalog.Image(ctx, img, opts.Catalog)
	if err != nil {
		return nil, err
	}
	a := &Assessment{SBOM: s, Scan: &match.Result{Findings: []match.Finding{}}}
	if opts.Advisories != nil {
		if a.Scan, err = match.Match(ctx, opts.Advisories, s); err != nil {
			return nil, fmt.Errorf("matching advisories: %w", err)
		}
		opts.VEX.Apply(a.Scan, []string{s.Source.Name, s.Source.Digest})
	}
	if a.Secrets, err = secrets.Scan(ctx, img.FS, img.Config, opts.Secrets); err != nil {
		return nil, fmt.Errorf("scanning for secrets: %w", err)
	}
	if opts.Policy == nil {
		return a, nil
	}
	bases, err := BaseChains(ctx, opts.Policy.Builtins.BaseImage.Approved, opts.Image)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, n := range img.FS.Files() {
		files = append(files, n.Path)
	}
	a.Decision, err = opts.Policy.Evaluate(&policy.Input{
		Repository: opts.Repository,
		SBOM:       s,
		Config:     img.Config,
		Findings:   a.Scan.Findings,
		Secrets:    a.Secrets,
		Files:      files,
		BaseChains: bases,
		Now:        opts.Now,
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// BaseChains reads the layer diffIDs of each approved base image from its
// registry (manifest and config only; no layer is downloaded).
func BaseChains(ctx context.Context, refs []string, opts image.Options) (map[string][]string, error) {
	out := map[string][]string{}
	for _, ref := range refs {
		r, err := image.ParseReference(ref, opts.Insecure)
		if err != nil {
			return nil, err
		}
		ropts, err := image.RemoteOptions(ctx, opts)
		if err != nil {
			return nil, err
		}
		img, err := remote.Image(r, ropts...)
		if err != nil {
			return nil, fmt.Errorf("reading approved base image %s: %w", ref, err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("reading config of approved base image %s: %w", ref, err)
		}
		for _, d := range cfg.RootFS.DiffIDs {
			out[ref] = append(out[ref], d.String())
		}
	}
	return out, nil
}
