package sign

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// TrustPolicy says which keys are trusted for which repositories and
// which attestations those repositories' images must carry. It is read
// from a YAML list:
//
//	# trust.yaml
//	- repositories: ["registry.example.com/prod/**"]
//	  keys: [keys/release.pub]
//	  attestations: ["https://bulwark.dev/attestations/decision/v1"]
//
// Every entry whose repositories match an image applies to it, and the
// image must satisfy each (AND across entries); within an entry, a
// signature by any one of its keys counts (OR across keys).
type TrustPolicy struct {
	// File is where the policy was read from.
	File    string
	Entries []TrustEntry
}

// TrustEntry is one item of a trust policy.
type TrustEntry struct {
	// Repositories are globs over fully qualified repository names
	// (path.Match syntax; a trailing "/**" matches any depth below).
	Repositories []string
	// KeyFiles are the public key files as written (relative to the
	// policy file's directory), Keys the keys read from them.
	KeyFiles []string
	Keys     []crypto.PublicKey
	// Attestations are predicate types required for these repositories.
	Attestations []string
	// Line is the entry's line in the policy file.
	Line int
}

// rawEntry is one entry as written; yaml.Node keeps line numbers.
type rawEntry struct {
	Repositories []yaml.Node `yaml:"repositories"`
	Keys         []yaml.Node `yaml:"keys"`
	Attestations []yaml.Node `yaml:"attestations"`
}

// LoadTrustPolicy reads a trust policy file and the key files it names.
func LoadTrustPolicy(file string) (*TrustPolicy, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading trust policy: %w", err)
	}
	return ParseTrustPolicy(file, b)
}

// ParseTrustPolicy parses a trust policy read from file (used in errors
// and to resolve relative key paths). Unknown keys are errors; errors
// name the line.
func ParseTrustPolicy(file string, b []byte) (*TrustPolicy, error) {
	errf := func(line int, format string, args ...any) error {
		return fmt.Errorf("trust policy %s: line %d: %s", file, line, fmt.Sprintf(format, args...))
	}
	var raw []rawEntry
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("trust policy %s: empty", file)
		}
		return nil, fmt.Errorf("trust policy %s: %s", file, yamlMessage(err))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("trust policy %s: %s", file, yamlMessage(err))
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("trust policy %s: no entries", file)
	}
	p := &TrustPolicy{File: file}
	for i, re := range raw {
		line := 0
		if len(doc.Content) == 1 && i < len(doc.Content[0].Content) {
			line = doc.Content[0].Content[i].Line
		}
		e := TrustEntry{Line: line}
		strs := func(field string, nodes []yaml.Node) ([]string, error) {
			if len(nodes) == 0 {
				return nil, errf(line, "entry %d: %q is empty", i+1, field)
			}
			var out []string
			for _, n := range nodes {
				if n.Kind != yaml.ScalarNode || n.Value == "" {
					return nil, errf(n.Line, "%s: want a non-empty string", field)
				}
				out = append(out, n.Value)
			}
			return out, nil
		}
		repos, err := strs("repositories", re.Repositories)
		if err != nil {
			return nil, err
		}
		for j, g := range repos {
			g = normalizeGlob(g)
			if err := checkGlob(g); err != nil {
				return nil, errf(re.Repositories[j].Line, "repository pattern %q: %v", repos[j], err)
			}
			e.Repositories = append(e.Repositories, g)
		}
		if e.KeyFiles, err = strs("keys", re.Keys); err != nil {
			return nil, err
		}
		for j, kf := range e.KeyFiles {
			if !filepath.IsAbs(kf) {
				kf = filepath.Join(filepath.Dir(file), kf)
			}
			kb, err := os.ReadFile(kf)
			if err != nil {
				return nil, errf(re.Keys[j].Line, "reading key: %v", err)
			}
			k, err := LoadPublicKey(kb)
			if err != nil {
				return nil, errf(re.Keys[j].Line, "%s: %v", kf, err)
			}
			e.Keys = append(e.Keys, k)
		}
		if len(re.Attestations) > 0 {
			if e.Attestations, err = strs("attestations", re.Attestations); err != nil {
				return nil, err
			}
		}
		p.Entries = append(p.Entries, e)
	}
	return p, nil
}

// yamlTypeName finds Go type names in yaml.v3's messages.
var yamlTypeName = regexp.MustCompile(` (in|into) (type )?(\[\])?sign\.rawEntry`)

// yamlMessage returns a yaml.v3 error in the policy's terms.
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	msg := strings.Join(te.Errors, "; ")
	return yamlTypeName.ReplaceAllStringFunc(msg, func(m string) string {
		switch {
		case strings.HasSuffix(m, "[]sign.rawEntry"):
			return " into a list of entries"
		case strings.HasPrefix(m, " into"):
			return " into an entry (a mapping)"
		}
		return ""
	})
}

// normalizeGlob spells Docker Hub as go-containerregistry names it.
func normalizeGlob(g string) string {
	if rest, ok := strings.CutPrefix(g, "docker.io/"); ok {
		return "index.docker.io/" + rest
	}
	return g
}

func checkGlob(g string) error {
	if g == "**" {
		return nil
	}
	prefix := strings.TrimSuffix(g, "/**")
	if strings.Contains(prefix, "**") {
		return errors.New(`"**" is allowed only as the whole last path element`)
	}
	if _, err := path.Match(prefix, ""); err != nil {
		return err
	}
	return nil
}

// matchRepository reports whether glob matches the repository name.
func matchRepository(glob, repo string) bool {
	if glob == "**" {
		return true
	}
	if prefix, ok := strings.CutSuffix(glob, "/**"); ok {
		n := strings.Count(prefix, "/") + 1
		parts := strings.Split(repo, "/")
		if len(parts) <= n {
			return false
		}
		ok, _ := path.Match(prefix, strings.Join(parts[:n], "/"))
		return ok
	}
	ok, _ := path.Match(glob, repo)
	return ok
}

// For returns the entries that apply to a fully qualified repository name
// (as name.Repository.Name() spells it), in file order.
func (p *TrustPolicy) For(repo string) []TrustEntry {
	var out []TrustEntry
	for _, e := range p.Entries {
		for _, g := range e.Repositories {
			if matchRepository(g, repo) {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

// Verify checks ref against every entry that applies to its repository:
// for each, a signature by one of the entry's keys, and the entry's
// attestations plus want's. The registry is read once. No applicable
// entry is a *VerificationError (ErrUntrusted).
func (p *TrustPolicy) Verify(ctx context.Context, ref string, want Requirements, opts Options) (*Verified, error) {
	r, err := parseReference(ref, opts)
	if err != nil {
		return nil, err
	}
	entries := p.For(r.Context().Name())
	if len(entries) == 0 {
		return nil, &VerificationError{Reference: ref, Reason: fmt.Sprintf("no entry of trust policy %s covers repository %s", p.File, r.Context().Name()), Err: ErrUntrusted}
	}
	withAtts := len(want.required()) > 0
	for _, e := range entries {
		withAtts = withAtts || len(e.Attestations) > 0
	}
	t, err := fetch(ctx, ref, r, opts, withAtts)
	if err != nil {
		return nil, err
	}
	var out *Verified
	for _, e := range entries {
		w := want
		w.Attestations = append(append([]string(nil), e.Attestations...), want.Attestations...)
		v, err := t.check(e.Keys, w)
		if err != nil {
			var ve *VerificationError
			if errors.As(err, &ve) {
				ve.Reason = fmt.Sprintf("trust policy %s line %d: %s", p.File, e.Line, ve.Reason)
			}
			return nil, err
		}
		out = merge(out, v)
	}
	return out, nil
}

// merge adds what v verified to out, once each.
func merge(out, v *Verified) *Verified {
	if out == nil {
		return v
	}
	for _, s := range v.Signatures {
		if !containsSig(out.Signatures, s) {
			out.Signatures = append(out.Signatures, s)
		}
	}
	for _, a := range v.Attestations {
		if !containsAtt(out.Attestations, a) {
			out.Attestations = append(out.Attestations, a)
		}
	}
	if out.Decision == nil {
		out.Decision = v.Decision
	}
	return out
}

func containsSig(list []VerifiedSignature, s VerifiedSignature) bool {
	for _, x := range list {
		if x.Layer == s.Layer && x.KeyID == s.KeyID {
			return true
		}
	}
	return false
}

func containsAtt(list []VerifiedAttestation, a VerifiedAttestation) bool {
	for _, x := range list {
		if x.Layer == a.Layer && x.KeyID == a.KeyID {
			return true
		}
	}
	return false
}
