package admission_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenResult is what a golden file records of both webhooks' answers.
type goldenResult struct {
	Allowed  bool             `json:"allowed"`
	Message  string           `json:"message,omitempty"`
	Warnings []string         `json:"warnings,omitempty"`
	Patch    []map[string]any `json:"patch,omitempty"`
}

// TestRulesGolden sends every object in testdata/rules as a real
// AdmissionReview to /mutate and /validate and compares the answers with
// testdata/rules/*.golden.json (go test -update rewrites them). IMAGE is
// a certified digest, UNCERTIFIED an unsigned one, TAG a tag of IMAGE.
func TestRulesGolden(t *testing.T) {
	f := newFixture(t)
	w := newWebhook(t, f.config(), nil)
	h := w.Handler()
	placeholders := strings.NewReplacer("UNCERTIFIED", f.uncertified.String(), "IMAGE", f.certified.String(), "TAG", f.reg.Ref("shop/api:1.4"))
	back := strings.NewReplacer(strings.Replace(f.uncertified.DigestStr(), ":", "-", 1), "UNCERTIFIED_DIGEST", f.uncertified.String(), "UNCERTIFIED", f.certified.String(), "IMAGE", f.reg.Ref("shop/api:1.4"), "TAG",
		f.reg.Host+"/shop/api@"+f.certified.DigestStr(), "IMAGE", f.reg.Host, "REGISTRY")
	files, err := filepath.Glob("testdata/rules/*.yaml")
	if err != nil || len(files) < 20 {
		t.Fatalf("testdata/rules: %d files, %v", len(files), err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var head struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal(src, &head); err != nil {
				t.Fatal(err)
			}
			obj := placeholders.Replace(string(src))
			m := post(t, h, "/mutate", review(t, head.Kind, head.Metadata.Namespace, obj))
			// As the API server does: mutate, then validate the result.
			if len(m.Patch) > 0 {
				obj = applyPatch(t, obj, m.Patch)
			}
			v := post(t, h, "/validate", review(t, head.Kind, head.Metadata.Namespace, obj))
			got := goldenResult{Allowed: v.Allowed, Message: message(v), Warnings: v.Warnings}
			if !m.Allowed {
				t.Errorf("the mutating webhook denied: %s", message(m))
			}
			if len(m.Patch) > 0 {
				if err := json.Unmarshal(m.Patch, &got.Patch); err != nil {
					t.Fatal(err)
				}
			}
			out, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			out = []byte(back.Replace(string(out)) + "\n")
			golden := strings.TrimSuffix(file, ".yaml") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if string(want) != string(out) {
				t.Errorf("%s differs (go test -update rewrites it):\n got: %s\nwant: %s", golden, out, want)
			}
			// Sanity independent of the golden files: *-ok objects are
			// admitted, *-bad and the rule cases are denied.
			name := filepath.Base(file)
			if strings.Contains(name, "-ok") && !got.Allowed {
				t.Errorf("%s denied: %s", name, got.Message)
			}
			if strings.Contains(name, "-bad") && got.Allowed {
				t.Errorf("%s admitted", name)
			}
		})
	}
}

// applyPatch applies the JSONPatch operations the webhook emits (add and
// replace, "-" to append) to a YAML object and returns it as JSON.
func applyPatch(t *testing.T, obj string, patch []byte) string {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal([]byte(obj), &doc); err != nil {
		t.Fatal(err)
	}
	var ops []struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}
	if err := json.Unmarshal(patch, &ops); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if op.Op != "add" && op.Op != "replace" {
			t.Fatalf("unexpected patch op %q", op.Op)
		}
		parts := strings.Split(op.Path, "/")[1:]
		for i := range parts {
			parts[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(parts[i])
		}
		var set func(node any, parts []string) any
		set = func(node any, parts []string) any {
			if len(parts) == 0 {
				return op.Value
			}
			switch n := node.(type) {
			case map[string]any:
				n[parts[0]] = set(n[parts[0]], parts[1:])
				return n
			case []any:
				if parts[0] == "-" {
					return append(n, op.Value)
				}
				var i int
				if _, err := fmt.Sscanf(parts[0], "%d", &i); err != nil || i >= len(n) {
					t.Fatalf("bad patch path %s", op.Path)
				}
				n[i] = set(n[i], parts[1:])
				return n
			}
			t.Fatalf("patch path %s through a %T", op.Path, node)
			return nil
		}
		doc = set(doc, parts)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
