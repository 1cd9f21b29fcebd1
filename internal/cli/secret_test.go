package cli

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
)

// TestSecretAndGovernanceCommands drives `bulwark secret` and `bulwark
// governance report` against a running server: values go in from files
// and environment variables and never come back out.
func TestSecretAndGovernanceCommands(t *testing.T) {
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalogue.yaml")
	os.WriteFile(cat, []byte("classes: [{name: pii-eu}]\nregulations: [{name: gdpr, classes: [pii-eu], regions: [eu-west-1]}]\n"+
		"stores: [{name: customers-db, address: '10.1.0.5:5432', classes: [pii-eu]}]\n"), 0o600)
	srv := servertest.Start(t, server.Config{WatchInterval: time.Hour, APILimits: api.Limits{Rate: -1},
		Secrets: server.SecretsConfig{Catalogue: cat}})
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte(srv.Admin+"\n"), 0o600)
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("file-secret-1"), 0o600)
	t.Setenv("DB_USER_FOR_TEST", "env-secret-2")
	conn := []string{"--server", srv.URL, "--token-file", tok}

	out, errOut, code := run(t, append([]string{"secret", "put", "shop/db", "--from-file", "password=" + pw, "--from-env", "user=DB_USER_FOR_TEST",
		"--spiffe-id", "spiffe://prod.example/ns/shop/**", "--class", "pii-eu", "--no-drift"}, conn...)...)
	if code != 0 || !strings.Contains(out, "secret shop/db version 1") {
		t.Fatalf("put: %d %s %s", code, out, errOut)
	}
	out, _, code = run(t, append([]string{"secret", "rotate", "shop/db", "--from-env", "user=DB_USER_FOR_TEST"}, conn...)...)
	if code != 0 || !strings.Contains(out, "version 2") {
		t.Fatalf("rotate: %d %s", code, out)
	}
	out, _, code = run(t, append([]string{"secret", "list"}, conn...)...)
	if code != 0 || !strings.Contains(out, "shop/db") || !strings.Contains(out, "eu-west-1") {
		t.Fatalf("list: %d %s", code, out)
	}
	meta, _, code := run(t, append([]string{"secret", "get-meta", "shop/db"}, conn...)...)
	if code != 0 || !strings.Contains(meta, `"version": 2`) {
		t.Fatalf("get-meta: %d %s", code, meta)
	}
	if strings.Contains(out+meta, "file-secret-1") || strings.Contains(out+meta, "env-secret-2") {
		t.Fatal("a value came back out")
	}
	out, _, code = run(t, append([]string{"secret", "grant", "shop/db", "--spiffe-id", "spiffe://prod.example/ns/shop/pod/api", "--class", "pii-eu"}, conn...)...)
	if code != 0 || !strings.Contains(out, "released to spiffe://prod.example/ns/shop/pod/api") {
		t.Fatalf("grant: %d %s", code, out)
	}
	// Bad input: a clear error, nothing written.
	for _, args := range [][]string{
		{"secret", "put", "../escape", "--from-file", "a=" + pw, "--spiffe-id", "spiffe://x/y"},
		{"secret", "put", "ok", "--from-file", "a=" + pw, "--spiffe-id", "spiffe://x/y", "--class", "pii-mars"},
		{"secret", "put", "ok", "--spiffe-id", "spiffe://x/y"},
		{"secret", "put", "ok", "--from-file", "a=" + pw, "--spiffe-id", "not-spiffe"},
	} {
		if _, errOut, code := run(t, append(args, conn...)...); code == 0 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
	if _, errOut, _ := run(t, append([]string{"secret", "put", "ok", "--from-file", "a=" + pw, "--spiffe-id", "spiffe://x/y", "--class", "pii-mars"}, conn...)...); !strings.Contains(errOut, `unknown data class "pii-mars"`) {
		t.Errorf("unknown class: %s", errOut)
	}
	out, _, code = run(t, append([]string{"governance", "report", "--format", "csv"}, conn...)...)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(rows) != 2 || rows[1][3] != "secret:shop/db" {
		t.Fatalf("report csv: %d %v %q", code, err, out)
	}
	if _, errOut, code := run(t, append([]string{"governance", "report", "--regulation", "sox"}, conn...)...); code == 0 || !strings.Contains(errOut, `unknown regulation "sox"`) {
		t.Fatalf("unknown regulation: %d %s", code, errOut)
	}
	out, _, code = run(t, append([]string{"secret", "delete", "shop/db"}, conn...)...)
	if code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %d %s", code, out)
	}
	if _, errOut, code := run(t, "secret", "list", "--server", srv.URL); code == 0 || !strings.Contains(errOut, "no API token") {
		t.Fatalf("without a token: %d %s", code, errOut)
	}
}
