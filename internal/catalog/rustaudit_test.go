package catalog

import (
	"testing"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// rustAuditSample is the .dep-v0 JSON that cargo-auditable 0.6 embeds in a
// small command-line tool: the root crate (source "local"), runtime
// dependencies (kind omitted), and build-time dependencies (kind "build").
const rustAuditSample = `{"packages":[` +
	`{"name":"aho-corasick","version":"1.1.2","source":"crates.io","dependencies":[5]},` +
	`{"name":"cc","version":"1.0.83","source":"crates.io","kind":"build","dependencies":[4]},` +
	`{"name":"hello-tool","version":"0.3.1","source":"local","dependencies":[0,1,3,6],"root":true},` +
	`{"name":"internal-log","version":"0.2.0","source":"git"},` +
	`{"name":"libc","version":"0.2.149","source":"crates.io","kind":"build"},` +
	`{"name":"memchr","version":"2.6.4","source":"crates.io"},` +
	`{"name":"regex","version":"1.10.2","source":"crates.io","kind":"runtime","dependencies":[0,5]}` +
	`]}`

func TestParseRustAudit(t *testing.T) {
	loc := sbom.Location{Path: "/usr/local/bin/hello-tool", Layer: "sha256:4a5b"}
	pkg := func(name, version, source string) sbom.Package {
		return sbom.Package{
			Name: name, Version: version, Type: sbom.TypeRust, PURL: "pkg:cargo/" + name + "@" + version,
			Locations: []sbom.Location{loc}, Metadata: map[string]string{"source": source},
		}
	}
	want := []sbom.Package{
		pkg("aho-corasick", "1.1.2", "crates.io"),
		pkg("hello-tool", "0.3.1", "local"),
		pkg("internal-log", "0.2.0", "git"),
		pkg("memchr", "2.6.4", "crates.io"),
		pkg("regex", "1.10.2", "crates.io"),
	}
	got, err := parseRustAudit([]byte(rustAuditSample), loc)
	if err != nil {
		t.Fatal(err)
	}
	assertLangPackages(t, got, want)

	for _, bad := range []string{"", "{", `{"packages":{}}`, `[1,2]`} {
		if _, err := parseRustAudit([]byte(bad), loc); err == nil {
			t.Errorf("parseRustAudit(%q): no error", bad)
		}
	}
}
