package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/vulndb"
)

// db import --data-dir DIR fills the server's advisory database (DIR/osv.db,
// bulwark server --data-dir DIR's default --advisory-db), logged as
// changes for the server to re-judge, and db status says whose database it
// is; --db and --data-dir together are refused.
func TestDBDataDirIsTheServers(t *testing.T) {
	dataDir := t.TempDir()
	if _, stderr, code := run(t, "db", "import", "--data-dir", dataDir, "ghsa="+osvTestdata(t, "osv/npm")); code != 0 {
		t.Fatalf("db import --data-dir: exit %d: %s", code, stderr)
	}
	adb, err := vulndb.Open(filepath.Join(dataDir, "osv.db"))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := adb.ChangesSince(context.Background(), "server")
	adb.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Records) != 7 {
		t.Errorf("the server's change log holds %d records after importing 7", len(ch.Records))
	}

	stdout, stderr, code := run(t, "db", "status", "--data-dir", dataDir)
	if code != 0 {
		t.Fatalf("db status --data-dir: exit %d: %s", code, stderr)
	}
	for _, want := range []string{filepath.Join(dataDir, "osv.db"), "of:", "the server's (bulwark server --data-dir " + dataDir + ")", "ghsa", "records:   7"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("db status --data-dir does not say %q:\n%s", want, stdout)
		}
	}
	stdout, _, _ = run(t, "db", "status", "--data-dir", dataDir, "--format", "json")
	var v struct {
		Of, DataDir, Path string
		Records           int
	}
	if err := json.Unmarshal([]byte(stdout), &v); err != nil || v.Of != "server" || v.DataDir != dataDir || v.Records != 7 {
		t.Errorf("db status --format json: %+v, %v\n%s", v, err, stdout)
	}

	file := filepath.Join(t.TempDir(), "osv.db")
	run(t, "db", "import", "--db", file, "ghsa="+osvTestdata(t, "osv/npm"))
	if stdout, _, _ := run(t, "db", "status", "--db", file); !strings.Contains(stdout, "the file given with --db") {
		t.Errorf("db status --db:\n%s", stdout)
	}
	if _, stderr, code := run(t, "db", "status", "--db", file, "--data-dir", dataDir); code == 0 || !strings.Contains(stderr, "--db and --data-dir") {
		t.Errorf("--db with --data-dir: exit %d: %s", code, stderr)
	}
}
