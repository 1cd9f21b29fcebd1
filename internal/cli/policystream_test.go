package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/testimage"
)

// TestPolicyCheckStreams: policy check reads a gzip image in one streaming
// pass, secrets scanned on the way, and decides exactly as with
// --keep-layers, a secret deleted by a later layer included; only
// --keep-layers leaves decompressed layers in the cache.
func TestPolicyCheckStreams(t *testing.T) {
	dir := t.TempDir()
	base := writeLayer(t, dir, "base.tar", map[string]string{
		"etc/os-release":        "ID=debian\nVERSION_ID=\"12\"\n",
		"var/lib/dpkg/status":   "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\nArchitecture: amd64\n\n",
		"root/.aws/credentials": "[default]\naws_access_key_id = " + fakeKeyID + "\naws_secret_access_key = " + fakeSecret + "\n",
	})
	top := writeLayer(t, dir, "top.tar", map[string]string{"root/.aws/.wh.credentials": ""})
	img, err := testimage.Image([]string{base, top}, nil)
	if err != nil {
		t.Fatal(err)
	}
	oci := filepath.Join(dir, "oci")
	p, err := layout.Write(oci, empty.Index)
	if err == nil {
		err = p.AppendImage(img)
	}
	if err != nil {
		t.Fatal(err)
	}
	pfile := filepath.Join(dir, "policy.yaml")
	os.WriteFile(pfile, []byte("name: t\nbuiltins:\n  image-age: {maxDays: 36500}\n"), 0o644)

	decide := func(cache string, extra ...string) []policy.RuleResult {
		t.Helper()
		args := append([]string{"policy", "check", oci, "--policy", pfile, "--no-db", "--cache-dir", cache, "-f", "json"}, extra...)
		stdout, stderr, code := run(t, args...)
		if code != ExitFindings {
			t.Fatalf("exit %d, want %d (the secret fails): %s", code, ExitFindings, stderr)
		}
		var d policy.Decision
		if err := json.Unmarshal([]byte(stdout), &d); err != nil {
			t.Fatalf("%v\n%s", err, stdout)
		}
		return d.Rules
	}
	streamCache, keepCache := filepath.Join(dir, "c1"), filepath.Join(dir, "c2")
	streamed, kept := decide(streamCache), decide(keepCache, "--keep-layers")
	if !reflect.DeepEqual(streamed, kept) {
		t.Errorf("streaming decided\n%+v\n--keep-layers decided\n%+v", streamed, kept)
	}
	for _, r := range streamed {
		if r.Name == policy.RuleSecrets && (r.Status != policy.StatusFail || !strings.Contains(strings.Join(r.Evidence, "\n"), "deleted by a later layer")) {
			t.Errorf("secrets rule: %s %v, want a failure naming the deleted key", r.Status, r.Evidence)
		}
	}
	if again := decide(streamCache); !reflect.DeepEqual(again, streamed) {
		t.Errorf("from the results cache\n%+v\ncold\n%+v", again, streamed)
	}
	tars := func(cache string) int {
		m, _ := filepath.Glob(filepath.Join(cache, "layers", "sha256", "*.tar"))
		return len(m)
	}
	if n := tars(streamCache); n != 0 {
		t.Errorf("streaming left %d decompressed layers", n)
	}
	if n := tars(keepCache); n != 2 {
		t.Errorf("--keep-layers kept %d decompressed layers, want 2", n)
	}
}
