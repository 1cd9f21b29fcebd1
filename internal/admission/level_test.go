package admission_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/admission"
)

// TestConfigLevels: pods.level and a namespace's own level are read from
// the configuration; a bad one is an error at its line.
func TestConfigLevels(t *testing.T) {
	cfg, err := admission.ParseConfig("admission.yaml", []byte(`pods:
  level: baseline:v1.33
  exceptions:
    - namespaces: [prod-*]
      level: restricted
    - namespaces: [kube-system]
      level: privileged
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Pods.Level.String(); got != "baseline:v1.33" {
		t.Errorf("pods.level %s", got)
	}
	if e := cfg.Pods.Exceptions; e[0].Level.String() != "restricted:latest" || e[1].Level.String() != "privileged:latest" {
		t.Errorf("exception levels %v %v", e[0].Level, e[1].Level)
	}
	def, err := admission.ParseConfig("admission.yaml", []byte("failurePolicy: closed\n"))
	if err != nil || def.Pods.Level.String() != "restricted:latest" {
		t.Errorf("default level %v, %v", def.Pods.Level, err)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"pods:\n  level: strict\n", `admission.yaml:2: level "strict": want privileged, baseline or restricted`},
		{"pods:\n  mode: warn\n  level: restricted:v1\n", `admission.yaml:3: level "restricted:v1": version "v1": want latest or v1.N`},
		{"pods:\n  exceptions:\n  - namespaces: [a]\n    level: [baseline]\n", `admission.yaml:4: level: want a string`},
		{"pods:\n  exceptions:\n  - allow: [hostPorts, seccomp]\n", `unknown rule "seccomp"`},
	} {
		if _, err := admission.ParseConfig("admission.yaml", []byte(bad.yaml)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.yaml, err, bad.want)
		}
	}
}

// TestLevelPerNamespace: the same pod is judged by its namespace's
// level: admitted in a baseline namespace, denied under restricted, and
// Bulwark's own rules apply on top of the level in both.
func TestLevelPerNamespace(t *testing.T) {
	cfg, err := admission.ParseConfig("admission.yaml", []byte(`pods:
  readOnlyRootFilesystem: true
  exceptions:
    - namespaces: [legacy]
      level: baseline
owners:
  labels: [owner]
`))
	if err != nil {
		t.Fatal(err)
	}
	w, err := admission.New(cfg, admission.Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	pod := func(ns string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: p, namespace: %s, labels: {owner: shop}}
spec:
  containers:
  - name: app
    image: registry.local/shop/api@sha256:%064d
    securityContext: {readOnlyRootFilesystem: true}
`, ns, 1)
	}
	rules := func(ns string) map[string]string {
		ms, err := admission.DecodeManifests("p.yaml", []byte(pod(ns)))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, f := range w.Check(context.Background(), ms[0].Object, false) {
			out[f.Rule] = f.Level
		}
		return out
	}
	if got := rules("legacy"); len(got) != 0 {
		t.Errorf("a pod the baseline level admits is denied in a baseline namespace: %v", got)
	}
	got := rules("shop")
	for _, r := range []string{"runAsNonRoot", "seccompProfile", "capabilities", "allowPrivilegeEscalation"} {
		if got[r] != "restricted:latest" {
			t.Errorf("restricted namespace: rule %s of level %q, want restricted:latest (all: %v)", r, got[r], got)
		}
	}
}

// TestManifestPosition: a finding's JSON pointer is found in the YAML it
// came from, through lists, flow mappings and escaped keys.
func TestManifestPosition(t *testing.T) {
	src := `apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: d}
  spec:
    template:
      metadata:
        annotations:
          container.apparmor.security.beta.kubernetes.io/app: unconfined
      spec:
        containers:
        - name: app
          image: x
          ports: [{containerPort: 80, hostPort: 80}]
`
	ms, err := admission.DecodeManifests("l.yaml", []byte(src))
	if err != nil || len(ms) != 1 {
		t.Fatal(ms, err)
	}
	for ptr, want := range map[string]string{
		"/spec/template/metadata/annotations/container.apparmor.security.beta.kubernetes.io~1app": "11:11",
		"/spec/template/spec/containers/0/ports/0/hostPort":                                       "16:39",
		"/spec/template/spec/containers/0/securityContext/allowPrivilegeEscalation":               "14:11",
		"/spec/template/spec/volumes/3":                                                           "12:7",
		"":                                                                                        "4:3",
	} {
		if l, c := ms[0].Position(ptr); fmt.Sprintf("%d:%d", l, c) != want {
			t.Errorf("%s at %d:%d, want %s", ptr, l, c, want)
		}
	}
}
