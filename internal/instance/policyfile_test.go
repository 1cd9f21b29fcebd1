package instance_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/instance"
)

// A typo in the instance policy file is named in YAML's terms: it said
// "error unmarshaling JSON: while decoding JSON: json: unknown field".
func TestLoadPolicyUnknownKey(t *testing.T) {
	f := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(f, []byte("regionz: [eu-west]\n"), 0o600)
	_, err := instance.LoadPolicy(f)
	if err == nil || err.Error() != `parsing instance policy `+f+`: unknown field "regionz"` {
		t.Errorf("LoadPolicy = %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "JSON") {
		t.Errorf("%q speaks of JSON in a YAML file", err)
	}
}
