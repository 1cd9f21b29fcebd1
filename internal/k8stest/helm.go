package k8stest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"sigs.k8s.io/yaml"
)

// HelmBin is the helm .ci/build-k8s.sh builds next to the Kubernetes
// binaries; the test skips without it unless BULWARK_REQUIRE_K8S=1.
func HelmBin(t testing.TB) string {
	t.Helper()
	p := filepath.Join(BinDir(), "helm")
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("helm missing at %s: build it with `bash .ci/build-k8s.sh`", p)
		if os.Getenv("BULWARK_REQUIRE_K8S") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// HelmTemplate renders chart as release in namespace with the values file
// values and extra arguments (--set ...), with the real helm and helm's
// homes in temporary directories.
func HelmTemplate(t testing.TB, chart, release, namespace, values string, extra ...string) (string, error) {
	t.Helper()
	vf := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(vf, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"template", release, chart, "--namespace", namespace, "--kube-version", Version, "-f", vf}, extra...)
	cmd := exec.Command(HelmBin(t), args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm template: %v: %s", err, errb.String())
	}
	return out.String(), nil
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// Objects parses a YAML stream into objects keyed "Kind/name".
func Objects(t testing.TB, stream string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, d := range docSep.Split(stream, -1) {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			t.Fatalf("parsing %s: %v", d, err)
		}
		if m == nil {
			continue
		}
		out[fmt.Sprintf("%s/%s", m["kind"], Dig(m, "metadata", "name"))] = m
	}
	return out
}

// Dig walks m by map keys (string) and list indexes (int); nil when a
// step is missing.
func Dig(m any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			mm, ok := m.(map[string]any)
			if !ok {
				return nil
			}
			m = mm[k]
		case int:
			l, ok := m.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			m = l[k]
		}
	}
	return m
}
