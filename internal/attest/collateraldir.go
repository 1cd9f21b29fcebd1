package attest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LoadOptions reads a collateral directory, every part optional:
//
//	intel-root.pem      the trusted Intel root (default: Intel's SGX Root CA)
//	snp/<Line>.pem      ASK+ARK for an AMD product line (default: AMD's real roots)
//	snp/vcek/*.der      VCEK certificates supplied ahead of time
//	tdx/, sgx/          Intel collateral (LoadIntelCollateral's files)
//	policy.yaml         the TEE policy
//
// A part that is present but unreadable or malformed is an error: a
// broken file must not silently drop a check.
func LoadOptions(dir string) (Options, error) {
	var o Options
	if _, err := os.Stat(dir); err != nil {
		return o, fmt.Errorf("reading collateral directory: %w", err)
	}
	read := func(p string) ([]byte, bool, error) {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("reading collateral %s: %w", p, err)
		}
		return b, true, nil
	}
	var err error
	if o.IntelRoot, _, err = read("intel-root.pem"); err != nil {
		return o, err
	}
	if b, found, err := read("policy.yaml"); err != nil {
		return o, err
	} else if found {
		if o.Policy, err = ParsePolicy(b); err != nil {
			return o, err
		}
	}
	roots, _ := filepath.Glob(filepath.Join(dir, "snp", "*.pem"))
	for _, r := range roots {
		b, err := os.ReadFile(r)
		if err != nil {
			return o, fmt.Errorf("reading AMD roots: %w", err)
		}
		if o.SNPRoots == nil {
			o.SNPRoots = map[string][]byte{}
		}
		o.SNPRoots[strings.TrimSuffix(filepath.Base(r), ".pem")] = b
	}
	vceks, _ := filepath.Glob(filepath.Join(dir, "snp", "vcek", "*.der"))
	for _, p := range vceks {
		b, err := os.ReadFile(p)
		if err != nil {
			return o, fmt.Errorf("reading VCEK: %w", err)
		}
		o.VCEKs = append(o.VCEKs, b)
	}
	for _, k := range []struct {
		sub string
		dst **IntelCollateral
	}{{"tdx", &o.TDX}, {"sgx", &o.SGX}} {
		if _, err := os.Stat(filepath.Join(dir, k.sub)); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if *k.dst, err = LoadIntelCollateral(filepath.Join(dir, k.sub)); err != nil {
			return o, fmt.Errorf("%s collateral: %w", k.sub, err)
		}
	}
	return o, nil
}

// DirDigest is the SHA-256 over a collateral directory's file names and
// contents: when it changes, the collateral changed.
func DirDigest(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("reading collateral directory: %w", err)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("reading collateral: %w", err)
		}
		rel, _ := filepath.Rel(dir, f)
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(b))
		h.Write(b)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
