package allowlist

import (
	"testing"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// TestTableKeepsTheList: the list built from Table(files) allows, maps and
// resolves the entrypoint exactly as the list built from files, with the
// directories and plain data files left out.
func TestTableKeepsTheList(t *testing.T) {
	app, lib, conf, sh := sum("app").String(), sum("lib").String(), sum("conf").String(), sum("sh").String()
	files := []sbom.File{
		{Path: "/bin", Type: "dir", Mode: "0755"},
		{Path: "/bin/app", Type: "file", Mode: "0755", Size: 3, Digest: app},
		{Path: "/bin/sh", Type: "file", Mode: "0755", Digest: sh},
		{Path: "/usr/bin/start", Type: "symlink", Linkname: "/bin/app"},
		{Path: "/usr/lib/libx.so.1", Type: "file", Mode: "0644", Digest: lib},
		{Path: "/etc/conf", Type: "file", Mode: "0644", Digest: conf},
		{Path: "/etc/plain", Type: "file", Mode: "0644"},
	}
	cfg := Config{Entrypoint: []string{"start"}}
	full, err := FromInventory("sha256:img", files, cfg)
	if err != nil {
		t.Fatal(err)
	}
	table := Table(files)
	if len(table) != 5 {
		t.Errorf("Table kept %d entries, want 5 (no dir, no plain data file): %+v", len(table), table)
	}
	small, err := FromInventory("sha256:img", table, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{app, lib, conf, sh} {
		pd, _ := ParseDigest(d)
		_, a1 := full.Allows(pd)
		_, a2 := small.Allows(pd)
		if a1 != a2 || full.Maps(pd) != small.Maps(pd) {
			t.Errorf("%s: allows %v/%v maps %v/%v", d, a1, a2, full.Maps(pd), small.Maps(pd))
		}
	}
	if full.Len() != small.Len() || full.Libraries != small.Libraries {
		t.Errorf("lists differ: %d/%d entries, libraries %v/%v", full.Len(), small.Len(), full.Libraries, small.Libraries)
	}
}
