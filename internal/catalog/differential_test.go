package catalog

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// The differential fuzz tests damage one record of a package database and
// check that every package of the other records is still listed: the
// packages the cataloger finds in the database without that record are a
// subset of what it finds in the damaged one.
//
// A record is damaged by replacing one of its lines (chosen by the fuzzer)
// with arbitrary bytes, after the line's own indentation: the damage is
// "one line that is not what the format says", as a flipped block or a bad
// edit makes it. For dpkg and apk, whose records are separated by blank
// lines only, the bytes may hold newlines too.

// diffFormat is one database format for the differential tests.
type diffFormat struct {
	path    string                                                                // where the database lives
	head    string                                                                // text before the records
	sep     string                                                                // between records
	tail    string                                                                // text after the records
	records []string                                                              // each a record's lines, newline-terminated
	parse   func(in *Input, n *layerfs.Node, data []byte) ([]sbom.Package, error) // the cataloger's parser
	newline bool                                                                  // damage may hold newlines
}

func (f diffFormat) build(records []string) []byte {
	return []byte(f.head + strings.Join(records, f.sep) + f.tail)
}

// keys runs the cataloger's parser over data as the file at f.path of a
// one-layer image, and returns "name@version" of each package.
func (f diffFormat) keys(t *testing.T, data []byte) map[string]bool {
	fsys, err := layerfs.Build(context.Background(), []layerfs.Layer{tarLayer(t, "sha256:x", map[string]string{strings.TrimPrefix(f.path, "/"): string(data)})})
	if err != nil {
		t.Fatal(err)
	}
	n, err := fsys.Stat(f.path)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := f.parse(&Input{FS: fsys, MaxFileSize: 1 << 20, TempDir: t.TempDir()}, n, data)
	if _, partial := err.(recordErrors); err != nil && !partial {
		return nil
	}
	out := map[string]bool{}
	for _, p := range pkgs {
		out[p.Name+"@"+p.Version] = true
	}
	return out
}

// fuzzDifferential runs the differential check of format f.
func fuzzDifferential(f *testing.F, format diffFormat) {
	f.Add(uint8(0), uint8(1), []byte("garbage without a colon"))
	f.Add(uint8(1), uint8(0), []byte("\x00\x01\xff"))
	f.Add(uint8(2), uint8(2), []byte(`"}, "x": [`))
	f.Add(uint8(1), uint8(1), []byte(""))
	f.Fuzz(func(t *testing.T, rec, line uint8, damage []byte) {
		i := int(rec) % len(format.records)
		if !format.newline {
			damage = bytes.ReplaceAll(damage, []byte("\n"), nil)
		}
		lines := strings.Split(strings.TrimSuffix(format.records[i], "\n"), "\n")
		j := int(line) % len(lines)
		lines[j] = lines[j][:indentOf(lines[j])] + string(damage)
		damaged := slices.Clone(format.records)
		damaged[i] = strings.Join(lines, "\n")
		if strings.HasSuffix(format.records[i], "\n") {
			damaged[i] += "\n"
		}

		want := format.keys(t, format.build(slices.Delete(slices.Clone(format.records), i, i+1)))
		got := format.keys(t, format.build(damaged))
		for k := range want {
			if !got[k] {
				t.Fatalf("damaging line %d of record %d lost %s, which the damage did not touch; got %v", j+1, i, k, got)
			}
		}
	})
}

// splitRecords reads a fixture database and splits it at blank lines.
func splitRecords(f *testing.F, file string) []string {
	data, err := os.ReadFile(file)
	if err != nil {
		f.Fatal(err)
	}
	var out []string
	for _, r := range strings.Split(strings.TrimSpace(string(data)), "\n\n") {
		out = append(out, r+"\n")
	}
	return out
}

func FuzzDifferentialDpkg(f *testing.F) {
	fuzzDifferential(f, diffFormat{path: "/var/lib/dpkg/status", sep: "\n", parse: parseDpkgStatus, newline: true,
		records: splitRecords(f, "testdata/dpkg/var/lib/dpkg/status")})
}

func FuzzDifferentialAPK(f *testing.F) {
	fuzzDifferential(f, diffFormat{path: "/lib/apk/db/installed", sep: "\n", parse: parseAPKInstalled, newline: true,
		records: splitRecords(f, "testdata/apk/lib/apk/db/installed")})
}

// numbered makes n records from a template with %d for the record number.
func numbered(n int, template string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strings.ReplaceAll(template, "%d", fmt.Sprint(i))
	}
	return out
}

func FuzzDifferentialNPMLock(f *testing.F) {
	fuzzDifferential(f, diffFormat{path: "/app/package-lock.json", parse: parseNPMLock,
		head: "{\n  \"name\": \"app\",\n  \"lockfileVersion\": 3,\n  \"packages\": {\n    \"\": {\n      \"name\": \"app\"\n    },\n",
		sep:  ",\n", tail: "\n  }\n}\n",
		records: numbered(5, "    \"node_modules/p%d\": {\n      \"version\": \"1.0.%d\",\n      \"resolved\": \"https://registry.npmjs.org/p%d/-/p%d-1.0.%d.tgz\",\n      \"license\": \"MIT\"\n    }"),
	})
}

func FuzzDifferentialComposerLock(f *testing.F) {
	fuzzDifferential(f, diffFormat{path: "/srv/app/composer.lock", parse: parseComposerLock,
		head: "{\n    \"content-hash\": \"x\",\n    \"packages\": [\n",
		sep:  ",\n", tail: "\n    ],\n    \"packages-dev\": [\n        {\n            \"name\": \"dev/tool\",\n            \"version\": \"9.9.9\"\n        }\n    ]\n}\n",
		records: numbered(5, "        {\n            \"name\": \"vendor/p%d\",\n            \"version\": \"v1.%d.0\",\n            \"license\": [\n                \"MIT\"\n            ]\n        }"),
	})
}

func FuzzDifferentialComposerInstalled(f *testing.F) {
	fuzzDifferential(f, diffFormat{path: "/srv/app/vendor/composer/installed.json", parse: parseComposerInstalled,
		head: "{\n    \"packages\": [\n", sep: ",\n", tail: "\n    ],\n    \"dev\": true\n}\n",
		records: numbered(5, "        {\n            \"name\": \"vendor/p%d\",\n            \"version\": \"v1.%d.0\",\n            \"type\": \"library\"\n        }"),
	})
}

func FuzzDifferentialDotnetDeps(f *testing.F) {
	fuzzDifferential(f, diffFormat{path: "/app/App.deps.json", parse: parseDotnetDeps,
		head: "{\n  \"runtimeTarget\": {\n    \"name\": \".NETCoreApp,Version=v8.0\"\n  },\n  \"libraries\": {\n",
		sep:  ",\n", tail: "\n  }\n}\n",
		records: numbered(5, "    \"Pkg%d/1.0.%d\": {\n      \"type\": \"package\",\n      \"serviceable\": true,\n      \"sha512\": \"sha512-x\"\n    }"),
	})
}

func FuzzDifferentialCargoLock(f *testing.F) {
	fuzzDifferential(f, diffFormat{path: "/src/Cargo.lock", parse: parseCargoLock,
		head: "# This file is automatically @generated by Cargo.\nversion = 3\n\n", sep: "\n",
		records: numbered(5, "[[package]]\nname = \"c%d\"\nversion = \"1.0.%d\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"abc%d\"\ndependencies = [\n \"c0\",\n]\n"),
	})
}

func FuzzDifferentialGemfileLock(f *testing.F) {
	fuzzDifferential(f, diffFormat{path: "/app/Gemfile.lock", parse: parseGemfileLock,
		head: "GEM\n  remote: https://rubygems.org/\n  specs:\n", tail: "\nPLATFORMS\n  ruby\n\nDEPENDENCIES\n  g0\n",
		records: numbered(5, "    g%d (1.0.%d)\n      racc (~> 1.4)\n"),
	})
}

// FuzzDifferentialRPM damages one header blob of a Berkeley DB or NDB
// database (bytes overwritten at an offset the fuzzer picks): every other
// package is still listed.
//
// The four smallest headers of the fixture, in a directory on /dev/shm when
// there is one: each input reads two databases, and on disk with the whole
// fixture that took the fuzzer down to a few inputs a second.
func FuzzDifferentialRPM(f *testing.F) {
	blobs := slices.Clone(fixtureBlobs(f))
	slices.SortFunc(blobs, func(a, b []byte) int { return len(a) - len(b) })
	blobs = blobs[:4]
	tmp := f.TempDir()
	if dir, err := os.MkdirTemp("/dev/shm", "bulwark-fuzz-*"); err == nil {
		tmp = dir
		f.Cleanup(func() { os.RemoveAll(dir) })
	}
	f.Add(uint8(0), uint16(8), []byte{0xff, 0xff, 0xff, 0xff}, false)
	f.Add(uint8(1), uint16(100), []byte("garbage"), true)
	f.Fuzz(func(t *testing.T, rec uint8, off uint16, damage []byte, bdb bool) {
		i := int(rec) % len(blobs)
		blob := slices.Clone(blobs[i])
		at := int(off) % len(blob)
		blob = append(blob[:at], append(damage, blob[min(at+len(damage), len(blob)):]...)...)
		damaged := slices.Clone(blobs)
		damaged[i] = blob
		make := makeNDB
		if bdb {
			make = makeBDB
		}
		keys := func(bs [][]byte) map[string]bool {
			infos, err := readRPMDB(tmp, "Packages", make(bs), nil)
			if _, partial := err.(recordErrors); err != nil && !partial {
				t.Fatalf("the whole database refused: %v", err)
			}
			out := map[string]bool{}
			for _, p := range infos {
				out[p.Name+"@"+rpmVersion(p)+"."+p.Arch] = true
			}
			return out
		}
		want := keys(slices.Delete(slices.Clone(blobs), i, i+1))
		got := keys(damaged)
		for k := range want {
			if !got[k] {
				t.Fatalf("damaging header %d at %d lost %s", i, at, k)
			}
		}
	})
}
