package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The PKCS#11 PIN comes from a file, never a flag; pkcs11 without a token
// or a PIN file is refused.
func TestSecretsOptions(t *testing.T) {
	pin := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(pin, []byte("1234\n"), 0o600)
	o := secretsOptions{kek: "pkcs11", module: "/usr/lib/softhsm/libsofthsm2.so", token: "t", pinFile: pin, keyLabel: "k"}
	c, err := o.config()
	if err != nil || c.PKCS11.PIN != "1234" || c.PKCS11.TokenLabel != "t" || c.KEK != "pkcs11" {
		t.Fatalf("config = %+v %v", c.PKCS11, err)
	}
	o.pinFile = ""
	if _, err := o.config(); err == nil || !strings.Contains(err.Error(), "pin-file") {
		t.Fatalf("no PIN file: %v", err)
	}
	o.pinFile = filepath.Join(t.TempDir(), "missing")
	if _, err := o.config(); err == nil {
		t.Fatal("a missing PIN file")
	}
	if c, err := (&secretsOptions{kek: "file"}).config(); err != nil || c.PKCS11.PIN != "" {
		t.Fatalf("file KEK: %+v %v", c, err)
	}
}

// A user who turns the workload listener on and forgets a file is told
// which flags are missing, by name, before anything starts.
func TestServerWorkloadListenerNamesMissingFlags(t *testing.T) {
	dir := t.TempDir()
	crt := filepath.Join(dir, "tls.crt")
	os.WriteFile(crt, []byte("x"), 0o600)
	_, stderr, code := run(t, "server", "--data-dir", dir, "--listen", "127.0.0.1:0",
		"--secrets-workload-listen", "127.0.0.1:0", "--secrets-workload-cert", crt)
	if code != ExitError {
		t.Fatalf("exit %d, want %d: %s", code, ExitError, stderr)
	}
	for _, want := range []string{"--secrets-workload-listen", "--secrets-workload-key", "--secrets-workload-ca"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q does not name %s", stderr, want)
		}
	}
	if strings.Contains(stderr, "--secrets-workload-cert ") {
		t.Errorf("stderr %q names --secrets-workload-cert, which was given", stderr)
	}
}
