package cli

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/fuzz"
	"github.com/bulwark-sec/bulwark/internal/fuzz/fuzztest"
)

func plantedTarget(t *testing.T, faulty bool) (spec, target string) {
	t.Helper()
	ts := httptest.NewServer((&fuzztest.Server{Faulty: faulty}).Handler())
	t.Cleanup(ts.Close)
	spec = filepath.Join(t.TempDir(), "openapi.json")
	if err := os.WriteFile(spec, []byte(fuzztest.Spec), 0o600); err != nil {
		t.Fatal(err)
	}
	return spec, ts.URL
}

func TestFuzzExitCodes(t *testing.T) {
	t.Setenv(fuzz.AuthEnv+"1", "Bearer "+fuzztest.Token)
	spec, target := plantedTarget(t, true)
	stdout, stderr, code := run(t, "fuzz", "--openapi", spec, "--target", target, "--auth", "Authorization", "--max-requests", "400", "--format", "json")
	if code != ExitFindings {
		t.Fatalf("faulty server: exit %d, want 1; stderr %s", code, stderr)
	}
	var res fuzz.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || len(res.Findings) == 0 {
		t.Fatalf("json report: %v, %d findings", err, len(res.Findings))
	}
	if strings.Contains(stdout, fuzztest.Token) || strings.Contains(stderr, fuzztest.Token) {
		t.Error("the credential is in the output")
	}

	spec, target = plantedTarget(t, false)
	out := filepath.Join(t.TempDir(), "fuzz.xml")
	if _, stderr, code := run(t, "fuzz", "--openapi", spec, "--target", target, "--auth", "Authorization: Bearer "+fuzztest.Token,
		"--max-requests", "300", "--format", "junit", "-o", out); code != ExitOK {
		t.Fatalf("clean server: exit %d, stderr %s", code, stderr)
	}
	if b, err := os.ReadFile(out); err != nil || !strings.Contains(string(b), "<testsuites>") {
		t.Errorf("junit file: %v", err)
	}

	// --secured takes the public healthz as secured: answering without
	// credentials is then a finding.
	stdout, stderr, code = run(t, "fuzz", "--openapi", spec, "--target", target, "--auth", "Authorization: Bearer "+fuzztest.Token,
		"--operations", "^healthz$", "--secured", "--max-requests", "20", "--format", "json")
	res = fuzz.Result{}
	if code != ExitFindings || json.Unmarshal([]byte(stdout), &res) != nil || len(res.Findings) != 2 || res.Findings[0].Rule != fuzz.RuleAuthBypass {
		t.Fatalf("--secured on healthz: exit %d, %+v, stderr %s; want the two auth-bypass findings", code, res.Findings, stderr)
	}

	for name, args := range map[string][]string{
		"other host":   {"--openapi", spec, "--target", "http://192.0.2.7:8080"},
		"no target":    {"--openapi", spec},
		"bad grant":    {"--openapi", spec, "--target", target, "--grant", "getItem:shoe-size"},
		"bad auth":     {"--openapi", spec, "--target", target, "--auth", "Bad Header: x"},
		"empty env":    {"--openapi", spec, "--target", target, "--auth", "X-Key", "--auth", "X-Other"},
		"bad format":   {"--openapi", spec, "--target", target, "--format", "xml"},
		"missing file": {"--openapi", filepath.Join(t.TempDir(), "none.json"), "--target", target},
		"bad regex":    {"--openapi", spec, "--target", target, "--operations", "(GET"},
		"no operation": {"--openapi", spec, "--target", target, "--operations", "^PATCH "},
		"bad param":    {"--openapi", spec, "--target", target, "--param", "namespace"},
		"unused param": {"--openapi", spec, "--target", target, "--param", "namespace=default"},
		"cert no key":  {"--openapi", spec, "--target", target, "--cert", spec},
		"bad cacert":   {"--openapi", spec, "--target", target, "--cacert", spec},
		"no cacert":    {"--openapi", spec, "--target", target, "--cacert", filepath.Join(t.TempDir(), "none.pem")},
	} {
		if _, stderr, code := run(t, append([]string{"fuzz"}, args...)...); code != ExitError || stderr == "" {
			t.Errorf("%s: exit %d, stderr %q; want 2 and a message", name, code, stderr)
		}
	}
}

func TestParseGrantAndAuth(t *testing.T) {
	g, err := parseGrants([]string{"GET /users/{id}:email", "getUser:us-ssn", "getUser:card-number"})
	if err != nil || len(g["GET /users/{id}"]) != 1 || len(g["getUser"]) != 2 {
		t.Fatalf("grants %v, %v", g, err)
	}
	a, err := parseAuth([]string{"X-Api-Key: k1", "Authorization"}, func(k string) string {
		if k == fuzz.AuthEnv+"2" {
			return "Bearer t"
		}
		return ""
	})
	if err != nil || a[0] != (fuzz.Pair{Name: "X-Api-Key", Value: "k1"}) || a[1] != (fuzz.Pair{Name: "Authorization", Value: "Bearer t"}) {
		t.Fatalf("auth %v, %v", a, err)
	}
}
