package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/match"
)

// Names of the built-in rules, in the order decisions list them.
const (
	RuleVulnerabilities = "vulnerabilities"
	RulePackagePins     = "package-pins"
	RuleBaseImage       = "base-image"
	RuleImageAge        = "image-age"
	RuleNonRoot         = "non-root"
	RuleLean            = "lean"
	RuleRequiredLabels  = "required-labels"
	RuleSecrets         = "secrets"
	// RuleInventoryComplete fails an image whose inventory could not be
	// read in whole: a damaged package database hides packages, and their
	// vulnerabilities, from every other rule.
	RuleInventoryComplete = "inventory-complete"
)

var builtinNames = []string{RuleVulnerabilities, RulePackagePins, RuleBaseImage, RuleImageAge, RuleNonRoot, RuleLean, RuleRequiredLabels, RuleSecrets, RuleInventoryComplete}

// violation is one piece of failing evidence; waivers can cover it by its
// package name or id.
type violation struct {
	text    string
	pkg     string // package name, for package waivers
	id      string // vulnerability id / secret rule / path, for id waivers
	aliases []string
}

// builtin is a built-in rule's check: its violations (none: pass), a line
// of passing evidence, or skip when it has nothing to check.
type builtin struct {
	name, description string
	on                bool
	check             func(in *Input, doc map[string]any) (violations []violation, evidence string, skip string)
}

func (p *Policy) builtins() []builtin {
	b := &p.Builtins
	return []builtin{
		{RuleVulnerabilities, fmt.Sprintf("no vulnerability at or above %s%s", b.Vulnerabilities.severity, map[bool]string{true: " with a fix", false: ""}[b.Vulnerabilities.OnlyFixable]), b.Vulnerabilities.On(), p.checkVulnerabilities},
		{RulePackagePins, "pinned packages at allowed versions, no banned package", b.PackagePins.On(), p.checkPins},
		{RuleBaseImage, "built on an approved base image", b.BaseImage.On(), p.checkBase},
		{RuleImageAge, fmt.Sprintf("created at most %d days ago", b.ImageAge.MaxDays), b.ImageAge.On(), p.checkAge},
		{RuleNonRoot, "does not run as root", b.NonRoot.On(), checkNonRoot},
		{RuleLean, "lean image", b.Lean.On(), p.checkLean},
		{RuleRequiredLabels, "required labels: " + strings.Join(b.RequiredLabels.Labels, ", "), b.RequiredLabels.On(), p.checkLabels},
		{RuleSecrets, "no secret in any layer, the config or the history", b.Secrets.On(), checkSecrets},
		{RuleInventoryComplete, "every package database and lock file read in whole", b.InventoryComplete.On(), checkInventoryComplete},
	}
}

// checkInventoryComplete fails for each record the catalogers could not
// read; a waiver covers one by its file path (ids).
func checkInventoryComplete(in *Input, _ map[string]any) ([]violation, string, string) {
	if in.SBOM == nil {
		return nil, "", "no inventory"
	}
	var vs []violation
	for _, p := range in.SBOM.Problems {
		vs = append(vs, violation{text: "incomplete inventory: " + p.String(), id: p.Path})
	}
	if in.SBOM.Incomplete && len(vs) == 0 {
		vs = append(vs, violation{text: "incomplete inventory: the SBOM says so without naming the records"})
	}
	return vs, fmt.Sprintf("%d packages, every package database read in whole", len(in.SBOM.Packages)), ""
}

func (p *Policy) checkVulnerabilities(in *Input, _ map[string]any) ([]violation, string, string) {
	r := p.Builtins.Vulnerabilities
	var vs []violation
	for _, f := range in.Findings {
		if f.Severity < r.severity || (r.OnlyFixable && f.Status != match.StatusFixed) {
			continue
		}
		fix := "no fix"
		if f.FixedVersion != "" {
			fix = "fixed in " + f.FixedVersion
		}
		vs = append(vs, violation{
			text: fmt.Sprintf("%s in %s %s (%s, %s)", f.ID, f.Package.Name, f.Package.Version, f.Severity, fix),
			pkg:  f.Package.Name, id: f.ID, aliases: f.Aliases,
		})
	}
	return vs, fmt.Sprintf("%s, none at or above %s", plural(len(in.Findings), "finding", "findings"), r.severity), ""
}

func (p *Policy) checkPins(in *Input, _ map[string]any) ([]violation, string, string) {
	r := p.Builtins.PackagePins
	if len(r.pins) == 0 && len(r.Deny) == 0 {
		return nil, "", "no pins or banned packages configured"
	}
	if in.SBOM == nil {
		return nil, "", "no inventory"
	}
	var vs []violation
	checked := 0
	for _, pkg := range in.SBOM.Packages {
		for _, b := range r.Deny {
			if pkg.Name == b.Name && (b.Type == "" || b.Type == pkg.Type) {
				text := fmt.Sprintf("banned package %s %s (%s)", pkg.Name, pkg.Version, pkg.Type)
				if b.Reason != "" {
					text += ": " + b.Reason
				}
				vs = append(vs, violation{text: text, pkg: pkg.Name})
			}
		}
		for _, pin := range r.pins {
			if !pin.applies(pkg) {
				continue
			}
			checked++
			ok, err := pin.allows(pkg)
			switch {
			case err != nil:
				vs = append(vs, violation{text: err.Error(), pkg: pkg.Name})
			case !ok:
				vs = append(vs, violation{text: fmt.Sprintf("%s %s is not an allowed version (%s)", pkg.Name, pkg.Version, strings.Join(pin.Versions, " | ")), pkg: pkg.Name})
			}
		}
	}
	return vs, fmt.Sprintf("%d pinned packages at allowed versions, no banned package", checked), ""
}

// checkBase finds an approved base whose layer chain is a prefix of the
// image's layers.
func (p *Policy) checkBase(in *Input, doc map[string]any) ([]violation, string, string) {
	r := p.Builtins.BaseImage
	if len(r.Approved) == 0 {
		return nil, "", "no approved base images configured"
	}
	if ref, n := matchBase(in, r.Approved); ref != "" {
		return nil, fmt.Sprintf("bottom %d layers are %s", n, ref), ""
	}
	return []violation{{text: "the image's bottom layers match none of: " + strings.Join(r.Approved, ", ")}}, "", ""
}

func matchBase(in *Input, approved []string) (string, int) {
	if in.SBOM == nil {
		return "", 0
	}
	layers := in.SBOM.Source.Layers
	best, bestN := "", 0
	for _, ref := range approved {
		chain := in.BaseChains[ref]
		if len(chain) == 0 || len(chain) > len(layers) {
			continue
		}
		ok := true
		for i, d := range chain {
			ok = ok && layers[i].DiffID == d
		}
		if ok && len(chain) > bestN {
			best, bestN = ref, len(chain)
		}
	}
	return best, bestN
}

func (p *Policy) checkAge(in *Input, _ map[string]any) ([]violation, string, string) {
	max := p.Builtins.ImageAge.MaxDays
	if in.Config == nil {
		return nil, "", "no image config (directory source)"
	}
	created := in.Config.Created.Time
	if created.IsZero() || created.Unix() <= 0 {
		return []violation{{text: "the image config has no creation time"}}, "", ""
	}
	days := in.Now.Sub(created).Hours() / 24
	if days > float64(max) {
		return []violation{{text: fmt.Sprintf("created %s, %.0f days ago (max %d)", created.UTC().Format("2006-01-02"), days, max)}}, "", ""
	}
	return nil, fmt.Sprintf("created %s, %.0f days ago", created.UTC().Format("2006-01-02"), days), ""
}

func checkNonRoot(in *Input, _ map[string]any) ([]violation, string, string) {
	if in.Config == nil {
		return nil, "", "no image config (directory source)"
	}
	user := strings.TrimSpace(in.Config.Config.User)
	name, _, _ := strings.Cut(user, ":")
	switch name {
	case "":
		return []violation{{text: "USER is not set: the container runs as root; add USER with a non-zero uid"}}, "", ""
	case "root", "0":
		return []violation{{text: fmt.Sprintf("USER is %q: the container runs as root; use a non-zero uid", user)}}, "", ""
	}
	return nil, fmt.Sprintf("USER %s", user), ""
}

var (
	shells          = []string{"/bin/sh", "/bin/bash", "/bin/dash", "/bin/ash", "/bin/zsh", "/usr/bin/sh", "/usr/bin/bash", "/usr/bin/dash", "/bin/busybox"}
	packageManagers = []string{"/usr/bin/apt", "/usr/bin/apt-get", "/usr/bin/dpkg", "/sbin/apk", "/usr/bin/rpm", "/usr/bin/yum", "/usr/bin/dnf", "/usr/bin/microdnf", "/usr/bin/pip", "/usr/bin/pip3"}
)

func (p *Policy) checkLean(in *Input, _ map[string]any) ([]violation, string, string) {
	r := p.Builtins.Lean
	var vs []violation
	var size int64
	npkgs := 0
	if in.SBOM != nil {
		for _, l := range in.SBOM.Source.Layers {
			size += l.Size
		}
		npkgs = len(in.SBOM.Packages)
	}
	if mb := size / (1 << 20); mb > int64(r.MaxSizeMB) {
		vs = append(vs, violation{text: fmt.Sprintf("%d MiB uncompressed, more than %d MiB", mb, r.MaxSizeMB)})
	}
	if r.MaxPackages > 0 && npkgs > r.MaxPackages {
		vs = append(vs, violation{text: fmt.Sprintf("%d packages, more than %d", npkgs, r.MaxPackages)})
	}
	if r.Distroless {
		for _, f := range in.Files {
			if slices.Contains(shells, f) {
				vs = append(vs, violation{text: "shell present: " + f, id: f})
			}
			if slices.Contains(packageManagers, f) {
				vs = append(vs, violation{text: "package manager present: " + f, id: f})
			}
		}
	}
	return vs, fmt.Sprintf("%d MiB, %d packages", size/(1<<20), npkgs), ""
}

func (p *Policy) checkLabels(in *Input, _ map[string]any) ([]violation, string, string) {
	if in.Config == nil {
		return nil, "", "no image config (directory source)"
	}
	var vs []violation
	for _, l := range p.Builtins.RequiredLabels.Labels {
		if strings.TrimSpace(in.Config.Config.Labels[l]) == "" {
			vs = append(vs, violation{text: "label " + l + " is not set", id: l})
		}
	}
	return vs, "all required labels set", ""
}

func checkSecrets(in *Input, _ map[string]any) ([]violation, string, string) {
	var vs []violation
	for _, f := range in.Secrets {
		where := f.Path
		if f.Layer != "" {
			where += " (layer " + shortDigest(f.Layer) + ")"
		}
		if f.Deleted {
			where += ", deleted by a later layer but still in the image"
		}
		text := fmt.Sprintf("%s: %s at %s", f.Rule, f.Redacted, where)
		if f.Line > 0 {
			text = fmt.Sprintf("%s: %s at %s:%d", f.Rule, f.Redacted, where, f.Line)
		}
		vs = append(vs, violation{text: text, id: f.Path, aliases: []string{f.Rule}})
	}
	return vs, "no secret found", ""
}

func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return hex[:12]
	}
	return d
}

// globMatch matches a repository against a glob; "**" at the end matches
// any depth ("registry.example.com/team/**").
func globMatch(glob, s string) bool {
	if prefix, ok := strings.CutSuffix(glob, "/**"); ok {
		return s == prefix || strings.HasPrefix(s, prefix+"/")
	}
	ok, err := path.Match(glob, s)
	return err == nil && ok
}

// plural is "1 finding", "2 findings".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
