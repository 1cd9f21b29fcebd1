package cli

import (
	"encoding/json"
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

	if out, errOut, code := run(t, "check", "-f", good); code != 0 || !strings.Contains(out, "1 objects, 0 findings") {
		t.Errorf("check good: code %d\n%s%s", code, out, errOut)
	}

	out, errOut, code := run(t, "check", "-f", filepath.Join(dir, "k8s"), "--format", "json")
	if code != ExitFindings {
		t.Fatalf("check dir: code %d, want 1\n%s", code, errOut)
	}
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	rules := map[string]bool{}
	for _, f := range rep.Findings {
		rules[f.Rule] = true
		if f.File != bad || f.Line != 5 || f.Document != 2 || f.Kind != "Pod" {
			t.Errorf("finding at %s:%d doc %d %s, want %s:5 doc 2 Pod", f.File, f.Line, f.Document, f.Kind, bad)
		}
	}
	for _, want := range []string{"image", "privileged", "hostNetwork", "runAsNonRoot", "capabilities", "allowPrivilegeEscalation"} {
		if !rules[want] {
			t.Errorf("no %s finding in %+v", want, rep.Findings)
		}
	}
	if rep.Objects != 2 || rep.Denied != len(rep.Findings) {
		t.Errorf("objects %d denied %d of %d", rep.Objects, rep.Denied, len(rep.Findings))
	}

	out, _, code = run(t, "check", "-f", bad, "--format", "sarif")
	if code != ExitFindings || !strings.Contains(out, `"ruleId": "privileged"`) || !strings.Contains(out, `"startLine": 5`) {
		t.Errorf("sarif: code %d\n%s", code, out)
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
