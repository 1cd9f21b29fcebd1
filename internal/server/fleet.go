package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/kube"
	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/respond"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// describer tells the running inventory what the server knows of a
// running digest (repository, owner application and lifecycle,
// certification, the ids of its findings) and which advisories affect a
// node's own packages, matching against the advisory database.
type describer struct {
	store *store.Store
	adb   match.Source
}

var _ fleet.Describer = (*describer)(nil)

func (d *describer) Image(ctx context.Context, digest string) (fleet.ImageFacts, error) {
	var f fleet.ImageFacts
	img, err := d.store.Image(ctx, digest)
	if errors.Is(err, store.ErrNotFound) {
		return f, nil // never scanned: nothing known, nothing matched
	}
	if err != nil {
		return f, err
	}
	f.Repository = img.Repository
	apps, err := d.store.ListApplications(ctx)
	if err != nil {
		return f, err
	}
	if a := store.OwnerOf(apps, img.Repository, img.Labels); a != nil {
		f.Application, f.EndOfLife = a.Name, a.Lifecycle == store.LifecycleEndOfLife
	}
	switch c, err := d.store.Certification(ctx, digest); {
	case err == nil:
		f.Certification = c.Status
	case !errors.Is(err, store.ErrNotFound):
		return f, err
	}
	inv, err := d.store.Inventory(ctx, digest)
	if errors.Is(err, store.ErrNotFound) {
		return f, nil
	}
	if err != nil {
		return f, err
	}
	if f.Advisories, err = d.ids(ctx, inv); err != nil {
		return f, fmt.Errorf("matching running image %s: %w", digest, err)
	}
	return f, nil
}

func (d *describer) Host(ctx context.Context, distro *agentproto.Distro, pkgs []agentproto.Package) ([]string, error) {
	s := &sbom.SBOM{Packages: make([]sbom.Package, 0, len(pkgs))}
	if distro != nil {
		s.Distro = &sbom.Distro{ID: distro.ID, VersionID: distro.VersionID}
	}
	for _, p := range pkgs {
		sp := sbom.Package{Name: p.Name, Version: p.Version, Type: p.Type}
		if p.Source != "" {
			sp.Source = &sbom.SourcePackage{Name: p.Source, Version: p.SourceVersion}
			if sp.Source.Version == "" {
				sp.Source.Version = p.Version
			}
		}
		s.Packages = append(s.Packages, sp)
	}
	return d.ids(ctx, s)
}

// ids is every id of every finding of s: finding ids, aliases and the
// matched records' ids.
func (d *describer) ids(ctx context.Context, s *sbom.SBOM) ([]string, error) {
	res, err := match.Match(ctx, d.adb, s)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range res.Findings {
		out = append(out, f.AllIDs()...)
		out = append(out, f.Advisories...)
	}
	return out, nil
}

// responder builds the respond worker from the configuration: the
// response policy file (none: alert only) and the cluster to act on
// (none: every action but alert is skipped, with the reason).
func responder(cfg Config, st *store.Store, auditor respond.Auditor, x *fleet.Index, log *slog.Logger) (*respond.Worker, error) {
	pol := respond.Default()
	if cfg.ResponsePolicy != "" {
		var err error
		if pol, err = respond.Load(cfg.ResponsePolicy); err != nil {
			return nil, err
		}
	}
	e := &respond.Engine{Policy: pol, Auditor: auditor, Log: log}
	if cfg.Kubeconfig != "" {
		c, err := loadKube(cfg.Kubeconfig)
		if err != nil {
			return nil, err
		}
		e.Orchestrator = &respond.Kubernetes{Client: c}
	}
	log.Info("runtime responses", "policy", cfg.ResponsePolicy, "dryRun", pol.DryRun, "kubernetes", e.Orchestrator != nil,
		"perNamespace", pol.PerNamespace, "rateWindow", pol.RateWindow, "breakerMax", pol.BreakerMax, "breakerSpan", pol.BreakerSpan)
	return &respond.Worker{Engine: e, Fleet: x, Jobs: st, Instance: cfg.Instance + "/respond", Poll: cfg.PollInterval,
		Log: log, Parallel: 8}, nil
}

// loadKube is the cluster of --kubeconfig ("in-cluster": the pod's own).
func loadKube(kubeconfig string) (*kube.Client, error) {
	path := kubeconfig
	if path == "in-cluster" {
		path = ""
	}
	return kube.Load(path)
}
