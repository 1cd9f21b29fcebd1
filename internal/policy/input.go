package policy

import (
	"encoding/json"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/secrets"
)

// Input is everything a decision is computed from.
type Input struct {
	// Repository is the image's repository ("registry.example.com/team/app"),
	// matched against waiver globs; empty for local sources.
	Repository string
	SBOM       *sbom.SBOM
	Config     *v1.ConfigFile // nil for a directory source
	Findings   []match.Finding
	Secrets    []secrets.Finding
	// Files lists the paths of the squashed file table (lean image checks).
	Files []string
	// BaseChains maps each approved base image reference to its layer
	// diffIDs, bottom first (resolved by the caller, see BaseResolver).
	BaseChains map[string][]string
	Now        time.Time
}

// document is the CEL input. Its JSON field names are the documented names
// a condition uses (docs/policy.md).
type document struct {
	Image     imageDoc        `json:"image"`
	Inventory inventoryDoc    `json:"inventory"`
	Findings  []match.Finding `json:"findings"`
	Secrets   []secretDoc     `json:"secrets"`
	Base      baseDoc         `json:"base"`
}

type imageDoc struct {
	Repository   string            `json:"repository"`
	Reference    string            `json:"reference"`
	Digest       string            `json:"digest"`
	ConfigDigest string            `json:"configDigest"`
	Created      string            `json:"created"`
	AgeDays      float64           `json:"ageDays"`
	User         string            `json:"user"`
	Entrypoint   []string          `json:"entrypoint"`
	Cmd          []string          `json:"cmd"`
	Env          map[string]string `json:"env"`
	Labels       map[string]string `json:"labels"`
	History      []string          `json:"history"`
	Layers       []sbom.Layer      `json:"layers"`
	SizeBytes    int64             `json:"sizeBytes"`
	Files        []string          `json:"files"`
}

type inventoryDoc struct {
	Distro   *sbom.Distro   `json:"distro"`
	Packages []sbom.Package `json:"packages"`
	// Complete is false when records could not be read (Problems).
	Complete bool           `json:"complete"`
	Problems []sbom.Problem `json:"problems"`
}

type secretDoc struct {
	Rule    string `json:"rule"`
	Path    string `json:"path"`
	Layer   string `json:"layer"`
	Deleted bool   `json:"deleted"`
}

type baseDoc struct {
	Matched   bool   `json:"matched"`
	Reference string `json:"reference"`
	Layers    int    `json:"layers"`
}

func (in *Input) document(base baseDoc) (map[string]any, error) {
	d := document{
		Findings: in.Findings,
		Base:     base,
		Image: imageDoc{
			Repository: in.Repository,
			Env:        map[string]string{},
			Labels:     map[string]string{},
			Files:      in.Files,
		},
	}
	if d.Findings == nil {
		d.Findings = []match.Finding{}
	}
	if s := in.SBOM; s != nil {
		d.Image.Reference, d.Image.Digest, d.Image.ConfigDigest = s.Source.Name, s.Source.Digest, s.Source.ConfigID
		d.Image.Layers = s.Source.Layers
		for _, l := range s.Source.Layers {
			d.Image.SizeBytes += l.Size
		}
		d.Inventory = inventoryDoc{Distro: s.Distro, Packages: s.Packages, Complete: !s.Incomplete, Problems: s.Problems}
		if d.Inventory.Problems == nil {
			d.Inventory.Problems = []sbom.Problem{}
		}
	}
	if c := in.Config; c != nil {
		if !c.Created.IsZero() {
			d.Image.Created = c.Created.UTC().Format(time.RFC3339)
			d.Image.AgeDays = in.Now.Sub(c.Created.Time).Hours() / 24
		}
		d.Image.User, d.Image.Entrypoint, d.Image.Cmd = c.Config.User, c.Config.Entrypoint, c.Config.Cmd
		for _, kv := range c.Config.Env {
			k, v, _ := strings.Cut(kv, "=")
			d.Image.Env[k] = v
		}
		for k, v := range c.Config.Labels {
			d.Image.Labels[k] = v
		}
		for _, h := range c.History {
			d.Image.History = append(d.Image.History, h.CreatedBy)
		}
	}
	for _, f := range in.Secrets {
		d.Secrets = append(d.Secrets, secretDoc{Rule: f.Rule, Path: f.Path, Layer: f.Layer, Deleted: f.Deleted})
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}
