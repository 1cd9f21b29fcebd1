// Package softhsmtest makes a real SoftHSM token for tests of the secret
// store's PKCS#11 key-encryption key: a token directory in t.TempDir(),
// SOFTHSM2_CONF pointing the library at it. Without SoftHSM the test
// skips, or fails under BULWARK_REQUIRE_SOFTHSM=1 (CI).
package softhsmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Module is Debian's SoftHSM PKCS#11 library.
const Module = "/usr/lib/softhsm/libsofthsm2.so"

// Token initialises a token and returns its label and user PIN.
func Token(t testing.TB) (label, pin string) {
	t.Helper()
	if _, err := os.Stat(Module); err != nil {
		if os.Getenv("BULWARK_REQUIRE_SOFTHSM") == "1" {
			t.Fatalf("BULWARK_REQUIRE_SOFTHSM=1 but %v (apt-get install softhsm2)", err)
		}
		t.Skipf("SoftHSM not installed: %v", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	label, pin = "bulwark-test", "4711-pin"
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "so-0815").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return label, pin
}
