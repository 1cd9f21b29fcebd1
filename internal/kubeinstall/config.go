package kubeinstall

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/admission"
)

// ConfigFiles is an admission configuration with every file it names,
// ready to be shipped into the cluster: each file keeps its path relative
// to the configuration's directory, so the configuration reads them
// unchanged from ConfigDir.
type ConfigFiles struct {
	// Main is the configuration's own file name (relative to ConfigDir).
	Main  string
	Files []File
}

// File is one file of the configuration.
type File struct {
	// Path is relative to the configuration's directory ("keys/a.pub").
	Path string
	// Key is its ConfigMap or Secret key ("keys_a.pub").
	Key  string
	Data []byte
	// Secret files (the server token) go into a Secret, the others into a
	// ConfigMap.
	Secret bool
}

var badKeyChars = regexp.MustCompile(`[^-._a-zA-Z0-9]`)

// CollectConfig loads the admission configuration at file (checking it as
// `bulwark admission serve` would) and reads it and the files it names:
// the trust policy and its keys, key files, the policy file, the server's
// CA file and token file. Every one must lie in the configuration's
// directory or below, so the same relative paths work in the container.
// An inline server token is refused: it would land in a ConfigMap.
func CollectConfig(file string) (*ConfigFiles, error) {
	cfg, err := admission.LoadConfig(file)
	if err != nil {
		return nil, err
	}
	if cfg.Server.Token != "" && cfg.Server.TokenFile == "" {
		return nil, fmt.Errorf("%s: server.token is inline; put it in a tokenFile so it is installed as a Secret, not a ConfigMap", file)
	}
	dir := filepath.Dir(file)
	out := &ConfigFiles{Main: filepath.Base(file)}
	seen := map[string]bool{}
	keys := map[string]string{}
	add := func(what, base, p string, secret bool) error {
		if p == "" {
			return nil
		}
		abs := p
		if !filepath.IsAbs(p) {
			abs = filepath.Join(base, p)
		}
		rel, err := filepath.Rel(dir, abs)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return fmt.Errorf("%s: %s %s is outside the configuration's directory %s; install ships that directory into the cluster, so move the file there and name it by a relative path", file, what, p, dir)
		}
		rel = filepath.ToSlash(rel)
		if seen[rel] {
			return nil
		}
		b, err := os.ReadFile(abs)
		if err != nil {
			return fmt.Errorf("reading %s %s: %w", what, p, err)
		}
		key := badKeyChars.ReplaceAllString(strings.ReplaceAll(rel, "/", "_"), "_")
		if other, ok := keys[key]; ok {
			return fmt.Errorf("%s: files %s and %s would share the key %q; rename one", file, other, rel, key)
		}
		keys[key] = rel
		seen[rel] = true
		out.Files = append(out.Files, File{Path: rel, Key: key, Data: b, Secret: secret})
		return nil
	}
	if err := add("admission config", dir, out.Main, false); err != nil {
		return nil, err
	}
	if p := cfg.Trust.Policy; p != "" {
		if err := add("trust policy", dir, p, false); err != nil {
			return nil, err
		}
		tpDir := filepath.Dir(filepath.Join(dir, p))
		if filepath.IsAbs(p) {
			tpDir = filepath.Dir(p)
		}
		for _, e := range cfg.TrustPolicy.Entries {
			for _, kf := range e.KeyFiles {
				if err := add("trust policy key", tpDir, kf, false); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, k := range cfg.Trust.Keys {
		if strings.HasPrefix(strings.TrimSpace(k), "-----BEGIN") {
			continue // inline PEM, in the config itself
		}
		if err := add("trust key", dir, k, false); err != nil {
			return nil, err
		}
	}
	if err := add("policy", dir, cfg.Policy, false); err != nil {
		return nil, err
	}
	if err := add("server CA file", dir, cfg.Server.CAFile, false); err != nil {
		return nil, err
	}
	if err := add("server token file", dir, cfg.Server.TokenFile, true); err != nil {
		return nil, err
	}
	return out, nil
}
