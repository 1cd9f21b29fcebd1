package vulndb

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-sec/bulwark/internal/registrytest"
)

// filledDB imports the Go, npm and Debian test records.
func filledDB(t *testing.T) *DB {
	t.Helper()
	db := openTestDB(t)
	dir := t.TempDir()
	for _, eco := range []string{"Go", "npm", "Debian"} {
		mustImport(t, db, ParseSource(writeZip(t, dir, eco, testRecords(t, "osv/"+eco))))
	}
	return db
}

func TestExport(t *testing.T) {
	db := filledDB(t)
	var buf bytes.Buffer
	if err := db.Export(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("SQLite format 3\x00")) {
		t.Fatalf("export is not a SQLite file: %q", buf.Bytes()[:16])
	}
	p := filepath.Join(t.TempDir(), "copy.db")
	os.WriteFile(p, buf.Bytes(), 0o644)
	cp, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	wantIDs(t, cp, "Go", "golang.org/x/net", "GO-2022-0969", "GO-2023-1571")
	wantIDs(t, cp, "Debian:12", "perl", "DEBIAN-CVE-2020-10543")
	if left := leftovers(t, filepath.Dir(db.Path())); len(left) != 0 {
		t.Errorf("files left next to the database: %v", left)
	}
}

func TestPushPull(t *testing.T) {
	reg := registrytest.New(t)
	db := filledDB(t)
	ctx := context.Background()
	ref := reg.Ref("bulwark/vulndb:latest")
	pushed, err := db.Push(ctx, ref, RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pushed.Config.Records != 14 || len(pushed.Config.Sources) != 3 || pushed.Config.SchemaVersion != SchemaVersion {
		t.Errorf("pushed config = %+v", pushed.Config)
	}

	// the artifact as a registry client sees it
	r, _ := name.ParseReference(ref)
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Config struct{ MediaType string }
		Layers []struct {
			MediaType string
			Size      int64
		}
	}
	json.Unmarshal(desc.Manifest, &m)
	if m.Config.MediaType != string(ConfigMediaType) || len(m.Layers) != 1 || m.Layers[0].MediaType != string(LayerMediaType) {
		t.Errorf("manifest = %s", desc.Manifest)
	}
	if desc.Digest.String() != pushed.Digest {
		t.Errorf("pushed digest %s, registry has %s", pushed.Digest, desc.Digest)
	}

	// pull over an existing database that has a stale WAL beside it
	dest := filepath.Join(t.TempDir(), "vulndb", "osv.db")
	os.MkdirAll(filepath.Dir(dest), 0o755)
	os.WriteFile(dest, []byte("old"), 0o644)
	os.WriteFile(dest+"-wal", []byte("stale wal"), 0o644)
	pulled, err := Pull(ctx, ref, dest, RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pulled.Digest != pushed.Digest || pulled.Config.Records != 14 {
		t.Errorf("pulled %+v, pushed %+v", pulled, pushed)
	}
	if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("pulled database: %v, %v", fi.Mode(), err)
	}
	if left := leftovers(t, filepath.Dir(dest)); len(left) != 0 {
		t.Errorf("files left next to the database: %v", left)
	}
	got, err := Open(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	wantIDs(t, got, "Go", "golang.org/x/net", "GO-2022-0969", "GO-2023-1571")
	wantIDs(t, got, "npm", "lodash", "GHSA-29mw-wpgm-hmr9", "GHSA-35jh-r3h4-6jhm", "GHSA-p6mc-m468-83gw")
	st, err := got.Status(ctx)
	if err != nil || len(st.Sources) != 3 || st.Records != 14 {
		t.Errorf("pulled status = %+v, %v", st, err)
	}
	// the pulled database takes incremental updates
	res := mustImport(t, got, ParseSource(writeZip(t, t.TempDir(), "npm", testRecords(t, "osv/npm"))))
	if res.Unchanged != 7 {
		t.Errorf("import into the pulled database = %s", res)
	}
}

func TestPullRefusesOtherArtifacts(t *testing.T) {
	reg := registrytest.New(t)
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "some/image:1", img)
	dest := filepath.Join(t.TempDir(), "osv.db")
	_, err = Pull(context.Background(), reg.Ref("some/image:1"), dest, RegistryOptions{})
	if err == nil || !strings.Contains(err.Error(), "not a bulwark vulnerability database") {
		t.Errorf("pull of an image: err = %v", err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Errorf("pull of an image created %s", dest)
	}
}
