package cli

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const checkGood = `apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  template:
    metadata: {labels: {owner: shop}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: app
        image: registry.local/shop/api@sha256:` + "0000000000000000000000000000000000000000000000000000000000000001" + `
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
`

const checkBad = `apiVersion: v1
kind: Service
metadata: {name: svc}
---
apiVersion: v1
kind: Pod
metadata: {name: root}
spec:
  hostNetwork: true
  containers:
  - name: app
    image: registry.local/shop/api:1.4
    securityContext: {privileged: true}
`

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "k8s", "prod")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "k8s", "good.yaml")
	bad := filepath.Join(sub, "bad.yml")
	if err := os.WriteFile(good, []byte(checkGood), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(checkBad), 0o644); err != nil {
		t.Fatal(err)
	}

	if out, errOut, code := run(t, "check", "-f", good); code != 0 || !strings.HasPrefix(out, "1 object, 0 findings") {
		t.Errorf("check good: code %d\n%s%s", code, out, errOut)
	}

	out, errOut, code := run(t, "check", "-f", filepath.Join(dir, "k8s"), "-o", "json")
	if code != ExitFindings {
		t.Fatalf("check dir: code %d, want 1\n%s", code, errOut)
	}
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	// Each finding is reported at its field: line and column in bad.yml
	// (a missing field at the nearest enclosing one present).
	want := map[string]string{
		"image": "12:5", "privileged": "13:23", "hostNetwork": "9:3", "runAsNonRoot": "13:5",
		"capabilities": "13:5", "allowPrivilegeEscalation": "13:5", "seccompProfile": "13:5",
	}
	got := map[string]string{}
	for _, f := range rep.Findings {
		got[f.Rule] = fmt.Sprintf("%d:%d", f.Line, f.Column)
		if f.File != bad || f.Document != 2 || f.Kind != "Pod" {
			t.Errorf("finding in %s doc %d %s, want %s doc 2 Pod", f.File, f.Document, f.Kind, bad)
		}
		if wantLevel := map[bool]string{true: "", false: "restricted:latest"}[f.Rule == "image"]; f.Level != wantLevel {
			t.Errorf("%s finding of level %q, want %q", f.Rule, f.Level, wantLevel)
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("findings at %v\nwant %v", got, want)
	}
	if rep.Objects != 2 || rep.Denied != len(rep.Findings) || rep.Level != "restricted:latest" {
		t.Errorf("objects %d denied %d of %d, level %q", rep.Objects, rep.Denied, len(rep.Findings), rep.Level)
	}

	out, _, code = run(t, "check", "-f", bad, "--format", "sarif")
	if code != ExitFindings || !strings.Contains(out, `"ruleId": "privileged"`) || !strings.Contains(out, `"startLine": 13`) || !strings.Contains(out, `"startColumn": 23`) {
		t.Errorf("sarif: code %d\n%s", code, out)
	}
	out, _, code = run(t, "check", "-f", bad)
	if code != ExitFindings || !strings.Contains(out, bad+":13:23") || !strings.Contains(out, "restricted:latest") ||
		!strings.Contains(out, "1 object, 7 findings (6 of Pod Security Standards levels, 1 of Bulwark's own rules), 7 would be denied") {
		t.Errorf("table: code %d\n%s", code, out)
	}
	if _, errOut, code := run(t, "check", "-f", bad, "-o", "json", "--format", "sarif"); code != ExitError || !strings.Contains(errOut, "disagree") {
		t.Errorf("-o and --format disagreeing: code %d %s", code, errOut)
	}

	// --level baseline: the restricted checks are gone, the baseline ones
	// and Bulwark's image rule stay.
	out, _, code = run(t, "check", "-f", bad, "--level", "baseline:v1.30", "-o", "json")
	rep = checkReport{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != ExitFindings {
		t.Fatalf("--level baseline: code %d %v\n%s", code, err, out)
	}
	got = map[string]string{}
	for _, f := range rep.Findings {
		got[f.Rule] = f.Level
	}
	if !maps.Equal(got, map[string]string{"image": "", "privileged": "baseline:v1.30", "hostNetwork": "baseline:v1.30"}) || rep.Level != "baseline:v1.30" {
		t.Errorf("--level baseline:v1.30: %v, level %s", got, rep.Level)
	}
	if _, errOut, code := run(t, "check", "-f", bad, "--level", "restricted:1.35"); code != ExitError || !strings.Contains(errOut, `level "restricted:1.35"`) {
		t.Errorf("bad --level: code %d %s", code, errOut)
	}

	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte(checkGood+"---\nkind: Pod\nspec: {containers: 3}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := run(t, "check", "-f", broken); code != ExitError || !strings.Contains(errOut, broken+":14: document 2: decoding Pod") {
		t.Errorf("bad input: code %d %s", code, errOut)
	}
	if _, errOut, code := run(t, "check"); code != ExitError || !strings.Contains(errOut, "-f is required") {
		t.Errorf("no -f: code %d %s", code, errOut)
	}
}

// One object with one finding is counted in the singular, in the summary
// and in the exit message ("1 of 1 finding", not "1 of 1 findings").
func TestCheckSingular(t *testing.T) {
	file := filepath.Join(t.TempDir(), "one.yaml")
	one := strings.Replace(checkGood, "@sha256:0000000000000000000000000000000000000000000000000000000000000001", ":1.4", 1)
	if err := os.WriteFile(file, []byte(one), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "check", "-f", file)
	if code != 1 || !strings.Contains(out, "1 object, 1 finding (0 of Pod Security Standards levels, 1 of Bulwark's own rules), 1 would be denied") ||
		!strings.Contains(errOut, "1 of 1 finding would be denied") {
		t.Errorf("check: code %d\n%s%s", code, out, errOut)
	}
}
