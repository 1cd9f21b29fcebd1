package catalog

import (
	"context"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// TestDpkgDamagedLine: one line that is not "Field: value" in the middle or
// at the end of the status file, or added by a later layer, costs at most
// its own stanza; the problem names the file, the line and the layer.
func TestDpkgDamagedLine(t *testing.T) {
	const a, b, c = "Package: a\nStatus: install ok installed\nVersion: 1\n", "Package: b\nStatus: install ok installed\nVersion: 2\n", "Package: c\nStatus: install ok installed\nVersion: 3\n"
	good := a + "\n" + b + "\n" + c
	for _, tt := range []struct {
		name        string
		base, later string // later is empty when the base layer is the last
		want        string // packages listed
		line        int
		layer       string
	}{
		{"middle, inside a stanza", a + "\n" + strings.Replace(b, "Status", "garbage\nStatus", 1) + "\n" + c, "", "a b c", 6, "sha256:base"},
		{"middle, a stanza of its own", a + "\nnot a field\n\n" + b + "\n" + c, "", "a b c", 5, "sha256:base"},
		{"middle, the Version line", a + "\n" + strings.Replace(b, "Version: 2", "Version 2", 1) + "\n" + c, "", "a c", 7, "sha256:base"},
		{"end", good + "\x00\x01", "", "a b c", 12, "sha256:base"},
		{"added by a later layer", good, good + "\ngarbage\n", "a b c", 13, "sha256:app"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			layers := []layerfs.Layer{tarLayer(t, "sha256:base", map[string]string{"var/lib/dpkg/status": tt.base})}
			if tt.later != "" {
				layers = append(layers, tarLayer(t, "sha256:app", map[string]string{"var/lib/dpkg/status": tt.later}))
			}
			fsys, err := layerfs.Build(context.Background(), layers)
			if err != nil {
				t.Fatal(err)
			}
			in := &Input{FS: fsys, MaxFileSize: 1 << 20}
			pkgs, err := Run(context.Background(), in, []Cataloger{dpkgCataloger()})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range pkgs {
				names = append(names, p.Name)
			}
			if got := strings.Join(names, " "); got != tt.want {
				t.Errorf("packages %q, want %q", got, tt.want)
			}
			if len(in.problems) == 0 {
				t.Fatal("no problem reported")
			}
			p := in.problems[0]
			if p.Path != "/var/lib/dpkg/status" || p.Line != tt.line || p.Layer != tt.layer {
				t.Errorf("problem %+v, want line %d in layer %s", p, tt.line, tt.layer)
			}
		})
	}
}

// TestJSONRecordsOneLine: a lock file written on one line is read as a
// token stream; an entry of the wrong shape costs that entry only.
func TestJSONRecordsOneLine(t *testing.T) {
	data := []byte(`{"lockfileVersion":3,"packages":{"node_modules/a":{"version":"1.0.0"},"node_modules/b":{"version":7},"node_modules/c":{"version":"3.0.0"}}}`)
	pkgs, err := npmLockPackages(data, sbomLocation())
	bad, ok := err.(recordErrors)
	if !ok || len(bad) != 1 || !strings.Contains(bad[0].Error(), "node_modules/b") {
		t.Errorf("err = %v, want entry node_modules/b reported", err)
	}
	if len(pkgs) != 2 || pkgs[0].Name != "a" || pkgs[1].Name != "c" {
		t.Errorf("packages %+v, want a and c", pkgs)
	}
}

func sbomLocation() sbom.Location { return sbom.Location{Path: "/app/package-lock.json"} }

// TestDotnetDepsByteOrderMark: dotnet publish writes deps.json with a UTF-8
// byte order mark, which encoding/json refuses.
func TestDotnetDepsByteOrderMark(t *testing.T) {
	data := []byte("\xef\xbb\xbf{\n  \"libraries\": {\n    \"Newtonsoft.Json/13.0.3\": {\n      \"type\": \"package\"\n    }\n  }\n}\n")
	pkgs, err := dotnetDepsPackages(data, sbomLocation())
	if err != nil || len(pkgs) != 1 || pkgs[0].Name != "Newtonsoft.Json" {
		t.Errorf("packages %+v, %v", pkgs, err)
	}
}

// TestJSONRecordsTwoOnALine: a valid lock file laid out with two records on
// a line loses neither.
func TestJSONRecordsTwoOnALine(t *testing.T) {
	data := []byte("{\n  \"packages\": {\n    \"node_modules/a\": {\"version\": \"1.0.0\"}, \"node_modules/b\": {\"version\": \"2.0.0\"}\n  }\n}\n")
	pkgs, err := npmLockPackages(data, sbomLocation())
	if err != nil || len(pkgs) != 2 {
		t.Errorf("packages %+v, %v, want a and b", pkgs, err)
	}
}
