package cli

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
)

// TestCAOfflineRoot: `bulwark ca init` writes a root whose key is sealed
// and 0600; `bulwark ca intermediate` signs an intermediate into the
// server's identity directory without the root key; the server opens it
// (the intermediate chains to the root), keeps its JWT keys across a new
// intermediate, and refuses another root's directory or a missing
// intermediate.
func TestCAOfflineRoot(t *testing.T) {
	rootDir := filepath.Join(t.TempDir(), "root")
	data := t.TempDir()
	if out, errb, code := run(t, "ca", "init", "--trust-domain", "prod.example", "--out", rootDir); code != 0 {
		t.Fatalf("ca init: %d %s %s", code, out, errb)
	}
	for f, want := range map[string]os.FileMode{"root.key": 0o600, "seal.key": 0o600, "root.crt": 0o644} {
		fi, err := os.Stat(filepath.Join(rootDir, f))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want mode %v", f, fi.Mode().Perm(), err, want)
		}
	}
	if _, errb, code := run(t, "ca", "init", "--trust-domain", "prod.example", "--out", rootDir); code == 0 || !strings.Contains(errb, "exists") {
		t.Errorf("a second ca init over the root: %d %s", code, errb)
	}
	td := spiffeid.RequireTrustDomainFromString("prod.example")
	key, err := seal.Load("", filepath.Join(data, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	idDir := filepath.Join(data, "identity")
	if _, err := server.OpenAuthority(idDir, td, key, 0, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("an online root was not made: %v", err)
	}
	if _, errb, code := run(t, "ca", "intermediate", "--root", rootDir, "--data-dir", data); code == 0 || !strings.Contains(errb, "online root key") {
		t.Errorf("ca intermediate into a directory of an online root: %d %s", code, errb)
	}
	os.RemoveAll(idDir)

	if _, errb, code := run(t, "ca", "intermediate", "--root", rootDir, "--data-dir", data); code != 0 {
		t.Fatalf("ca intermediate: %d %s", code, errb)
	}
	if _, err := os.Stat(filepath.Join(idDir, identity.RootKeyFile)); err == nil {
		t.Fatal("the root key was copied to the server")
	}
	if fi, err := os.Stat(filepath.Join(idDir, identity.StateFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state.json: %v %v", fi, err)
	}
	a, err := server.OpenAuthority(idDir, td, key, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rootCert, _, err := identity.ReadRoot(rootDir, mustSeal(t, filepath.Join(rootDir, "seal.key")))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(rootCert)
	if _, err := a.Intermediate().Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("the intermediate does not chain to the offline root: %v", err)
	}
	jwtKeys := a.State().JWTKeys
	if _, errb, code := run(t, "ca", "intermediate", "--root", rootDir, "--data-dir", data); code != 0 {
		t.Fatalf("a second ca intermediate: %d %s", code, errb)
	}
	b, err := server.OpenAuthority(idDir, td, key, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if b.Intermediate().Equal(a.Intermediate()) || b.State().JWTKeys[0].ID != jwtKeys[0].ID {
		t.Error("a new intermediate must replace the old one and keep the JWT keys")
	}

	// Another root's directory is refused; no intermediate is an error
	// that says what to run.
	other := filepath.Join(t.TempDir(), "other")
	run(t, "ca", "init", "--trust-domain", "prod.example", "--out", other)
	if _, errb, code := run(t, "ca", "intermediate", "--root", other, "--data-dir", data); code == 0 || !strings.Contains(errb, "another root") {
		t.Errorf("ca intermediate of another root: %d %s", code, errb)
	}
	os.Remove(filepath.Join(idDir, identity.StateFile))
	if _, err := server.OpenAuthority(idDir, td, key, 0, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "bulwark ca intermediate") {
		t.Errorf("an offline root without intermediate: %v", err)
	}
}

func mustSeal(t *testing.T, path string) *seal.Key {
	t.Helper()
	k, err := seal.Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestIdentityCommands: `bulwark identity list` and `why` show a
// server's decisions: an issued identity and a refusal with its reason
// (why exits 1 for it); a bad token is a clear error.
func TestIdentityCommands(t *testing.T) {
	d, _ := name.NewDigest("registry.example/app@sha256:" + strings.Repeat("c", 64))
	u, _ := name.NewDigest("registry.example/app@sha256:" + strings.Repeat("d", 64))
	srv := servertest.Start(t, server.Config{WatchInterval: time.Hour, Identity: server.IdentityConfig{TrustDomain: "cli.example",
		Template: "spiffe://{trustDomain}/ns/{namespace}/container/{container}"}},
		servertest.Image{Digest: d, Tag: "1", Certified: true}, servertest.Image{Digest: u, Tag: "2"})
	post := func(path string, body any) { srv.Post(t, path, body) }
	post(agentproto.HeartbeatPath, agentproto.Heartbeat{Node: "n1", Mode: "detect", State: agentproto.StateDetectingOnly})
	key, _ := identity.NewKey()
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	for c, img := range map[string]string{"good": d.DigestStr(), "bad": u.DigestStr()} {
		post(agentproto.IdentityX509Path, agentproto.X509Request{Node: "n1", CSR: csr, Workload: agentproto.Workload{Container: c, Image: img, Namespace: "ns"}})
	}
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte(srv.Viewer+"\n"), 0o600)
	out, errb, code := run(t, "identity", "list", "--server", srv.URL, "--token-file", tok)
	if code != 0 || !strings.Contains(out, "spiffe://cli.example/ns/ns/container/good") || !strings.Contains(out, "refused (uncertified)") {
		t.Fatalf("identity list: %d\n%s%s", code, out, errb)
	}
	if out, errb, code := run(t, "identity", "why", "bad", "--server", srv.URL, "--token-file", tok); code != 1 || !strings.Contains(out, "has no certification") {
		t.Fatalf("identity why bad: %d\n%s%s", code, out, errb)
	}
	if out, errb, code := run(t, "identity", "why", "good", "--server", srv.URL, "--token-file", tok); code != 0 || !strings.Contains(out, "issued until") {
		t.Fatalf("identity why good: %d\n%s%s", code, out, errb)
	}
	if out, _, code := run(t, "identity", "list", "--json", "--server", srv.URL, "--token-file", tok); code != 0 || !json.Valid([]byte(out)) {
		t.Fatalf("identity list --json: %d %s", code, out)
	}
	pemFile := filepath.Join(t.TempDir(), "roots.pem")
	if _, errb, code := run(t, "identity", "bundle", "--format", "pem", "-o", pemFile, "--server", srv.URL); code != 0 {
		t.Fatalf("identity bundle --format pem: %d %s", code, errb)
	}
	if b, _ := os.ReadFile(pemFile); !bytes.HasPrefix(b, []byte("-----BEGIN CERTIFICATE-----")) {
		t.Fatalf("the PEM bundle: %q", b)
	}
	out, errb, code = run(t, "identity", "bundle", "--server", srv.URL)
	if _, err := spiffebundle.Parse(spiffeid.RequireTrustDomainFromString("cli.example"), []byte(out)); code != 0 || err != nil {
		t.Fatalf("identity bundle: %d %v %s", code, err, errb)
	}
	os.WriteFile(tok, []byte("wrong"), 0o600)
	if _, errb, code := run(t, "identity", "list", "--server", srv.URL, "--token-file", tok); code == 0 || !strings.Contains(errb, "401") {
		t.Fatalf("a wrong token: %d %s", code, errb)
	}
}
