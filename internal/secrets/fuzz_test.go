package secrets

import (
	"bytes"
	"context"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// fuzzPaths exercise the rules that read only some files.
var fuzzPaths = []string{"app/data.txt", "app/config.yaml", "root/.npmrc", "root/.docker/config.json"}

// FuzzScanContent feeds arbitrary bytes as a file (and as an ENV value and
// a history entry): the scan must not fail or panic, and every finding must
// be redacted: at most four characters of the input kept, then only '*'.
func FuzzScanContent(f *testing.F) {
	fk := newFakes()
	for i, c := range ruleCases(f, fk) {
		f.Add(uint8(i), []byte(c.hit.body))
		f.Add(uint8(i), []byte(c.miss.body))
	}
	f.Add(uint8(0), []byte("-----BEGIN PRIVATE KEY-----\\n\\n\\nProc-Type: x\r\n"+strings.Repeat("A", 64)))
	f.Add(uint8(1), []byte("password: \"\"\n\"password\":'x'\npassword=\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8"))
	f.Fuzz(func(t *testing.T, sel uint8, data []byte) {
		name := fuzzPaths[int(sel)%len(fuzzPaths)]
		fsys := image(t, []file{{name, string(data)}})
		cfg := &v1.ConfigFile{
			Config:  v1.Config{Env: []string{"SECRET_TOKEN=" + string(data)}},
			History: []v1.History{{CreatedBy: "RUN |1 API_KEY=" + string(data)}},
		}
		fs, err := Scan(context.Background(), fsys, cfg, Options{})
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		for _, f := range fs {
			if err := checkRedacted(f.Redacted); err != nil {
				t.Fatalf("%s: %v", f.Rule, err)
			}
			kept := strings.ReplaceAll(f.Redacted[:min(4, len(f.Redacted))], "*", "")
			if len(f.Redacted) > len(data) || strings.Trim(kept, string(data)) != "" {
				t.Fatalf("%s: redacted %q is not a redaction of the input", f.Rule, f.Redacted)
			}
			if f.Line < 1 || f.Line > lines {
				t.Fatalf("%s: line %d of a %d-line input", f.Rule, f.Line, lines)
			}
		}
	})
}
