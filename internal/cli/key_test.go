package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/sign"
)

// runSub executes a command built by newCmd (not yet part of the root
// tree) and returns its output and the exit code Execute would return.
func runSub(t *testing.T, newCmd func(*globalOptions) *cobra.Command, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := newCmd(&globalOptions{stderr: &errb})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetIn(strings.NewReader(""))
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	code = ExitOK
	if err != nil {
		errb.WriteString("bulwark: " + err.Error() + "\n")
		code = ExitError
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
	}
	return out.String(), errb.String(), code
}

// unsetPassphraseEnv clears the passphrase variables for one test.
func unsetPassphraseEnv(t *testing.T) {
	for _, v := range passphraseEnv {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestKeyGenerate(t *testing.T) {
	unsetPassphraseEnv(t)
	t.Setenv("BULWARK_PASSWORD", "s3cret-pass")
	prefix := filepath.Join(t.TempDir(), "release")
	stdout, stderr, code := runSub(t, newKeyCmd, "generate", "--output-key-prefix", prefix)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, s := range []string{stdout, stderr} {
		if strings.Contains(s, "s3cret-pass") || strings.Contains(s, "PRIVATE KEY") {
			t.Errorf("output shows the passphrase or the key: %q", s)
		}
	}
	if m := mode(t, prefix+".key"); m != 0o600 {
		t.Errorf("key mode %o, want 600", m)
	}
	if m := mode(t, prefix+".pub"); m != 0o644 {
		t.Errorf("public key mode %o, want 644", m)
	}
	s, err := sign.LoadKeyFile(prefix+".key", []byte("s3cret-pass"))
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, _ := os.ReadFile(prefix + ".pub")
	pub, err := sign.LoadPublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if sign.KeyID(pub) != sign.KeyID(s.PublicKey()) {
		t.Error("the public key file does not match the private key")
	}

	// No overwrite without --force, and nothing changes.
	before, _ := os.ReadFile(prefix + ".key")
	if _, stderr, code := runSub(t, newKeyCmd, "generate", "--output-key-prefix", prefix); code != ExitError || !strings.Contains(stderr, "--force") {
		t.Errorf("second generate: exit %d, %s", code, stderr)
	}
	if after, _ := os.ReadFile(prefix + ".key"); !bytes.Equal(before, after) {
		t.Error("the key file changed without --force")
	}

	// --force overwrites and resets the modes.
	os.Chmod(prefix+".key", 0o644)
	os.Chmod(prefix+".pub", 0o600)
	t.Setenv("BULWARK_PASSWORD", "")
	os.Unsetenv("BULWARK_PASSWORD")
	t.Setenv("COSIGN_PASSWORD", "from-cosign-env")
	if _, stderr, code := runSub(t, newKeyCmd, "generate", "--output-key-prefix", prefix, "--force"); code != ExitOK {
		t.Fatalf("generate --force: exit %d, %s", code, stderr)
	}
	if m := mode(t, prefix+".key"); m != 0o600 {
		t.Errorf("key mode after --force %o, want 600", m)
	}
	if m := mode(t, prefix+".pub"); m != 0o644 {
		t.Errorf("public key mode after --force %o, want 644", m)
	}
	if _, err := sign.LoadKeyFile(prefix+".key", []byte("from-cosign-env")); err != nil {
		t.Errorf("COSIGN_PASSWORD was not used: %v", err)
	}
}

func TestKeyGenerateNeedsPassphrase(t *testing.T) {
	unsetPassphraseEnv(t)
	prefix := filepath.Join(t.TempDir(), "k")
	_, stderr, code := runSub(t, newKeyCmd, "generate", "--output-key-prefix", prefix)
	if code != ExitError || !strings.Contains(stderr, "BULWARK_PASSWORD") {
		t.Errorf("exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(prefix + ".key"); !errors.Is(err, os.ErrNotExist) {
		t.Error("a key file was written without a passphrase")
	}
}
