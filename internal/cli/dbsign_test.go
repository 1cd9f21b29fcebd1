package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/registrytest"
)

// TestDBPushPullSigned: db push --key signs the artifact; db pull --key
// verifies it before replacing the local database and refuses an artifact
// signed by another key, leaving the local database as it was.
func TestDBPushPullSigned(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BULWARK_PASSWORD", "pw")
	for _, p := range []string{"a", "b"} {
		if _, stderr, code := run(t, "key", "generate", "--output-key-prefix", filepath.Join(dir, p)); code != 0 {
			t.Fatal(stderr)
		}
	}
	reg := registrytest.New(t)
	src := advisoryDB(t, nil)
	ref := reg.Ref("security/bulwark-db:latest")
	if stdout, stderr, code := run(t, "db", "push", ref, "--db", src, "--key", filepath.Join(dir, "a.key")); code != 0 || !strings.Contains(stdout, "signed") {
		t.Fatalf("push: exit %d %s %s", code, stdout, stderr)
	}

	dst := filepath.Join(dir, "pulled.db")
	if _, stderr, code := run(t, "db", "pull", ref, "--db", dst, "--key", filepath.Join(dir, "b.pub")); code != ExitFindings || !strings.Contains(stderr, "refusing the advisory database") {
		t.Fatalf("pull with the wrong key: exit %d %s", code, stderr)
	}
	if _, err := os.Stat(dst); err == nil {
		t.Fatal("a refused pull wrote the database")
	}
	stdout, stderr, code := run(t, "db", "pull", ref, "--db", dst, "--key", filepath.Join(dir, "a.pub"))
	if code != 0 {
		t.Fatalf("pull: exit %d %s %s", code, stdout, stderr)
	}
	// the line names the reference asked for and the digest pulled, once
	if !strings.HasPrefix(stdout, "pulled "+ref+"@sha256:") || strings.Count(stdout, "@sha256:") != 1 {
		t.Errorf("pull said %q, want %q", stdout, "pulled "+ref+"@sha256:... into ...")
	}
	if stdout, _, code := run(t, "db", "status", "--db", dst, "-f", "json"); code != 0 || !strings.Contains(stdout, `"records": 18`) {
		t.Errorf("pulled database status: %s", stdout)
	}
}
