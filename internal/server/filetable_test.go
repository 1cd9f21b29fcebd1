package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulwark-sec/bulwark/internal/containerdtest"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// TestScanKeepsFileTable: a scan stores, apart from the inventory, the
// allowlist file table of the digest: the executables with their content
// digest and layer, the entrypoint's symlinks; the stored inventory itself
// carries no file table (re-evaluation decodes inventories).
func TestScanKeepsFileTable(t *testing.T) {
	img := containerdtest.Image(t, map[string][]byte{"bin/app": []byte("\x7fELF app"), "etc/": nil}, "/bin/app")
	cf, _ := img.ConfigFile()
	st, digest := scanned(t, img)
	files, err := st.FileTable(t.Context(), digest)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("\x7fELF app"))
	if len(files) != 1 || files[0].Path != "/bin/app" || files[0].Digest != "sha256:"+hex.EncodeToString(sum[:]) ||
		files[0].Layer != cf.RootFS.DiffIDs[0].String() || files[0].Mode != "0755" {
		t.Errorf("file table: %+v", files)
	}
	inv, err := st.Inventory(t.Context(), digest)
	if err != nil || len(inv.Files) != 0 {
		t.Errorf("the stored inventory: %d files, %v; want none", len(inv.Files), err)
	}
}

// TestScanSkipsFileTableAgentsRefuse: a file table longer than agents take
// (agentproto.MaxAllowlistFiles, here lowered to 2) is not kept: every
// node adopting the digest would have downloaded and decoded it only to
// refuse it whole. The scan itself succeeds; the route answers 404.
func TestScanSkipsFileTableAgentsRefuse(t *testing.T) {
	defer func(n int) { maxFileTable = n }(maxFileTable)
	maxFileTable = 2
	img := containerdtest.Image(t, map[string][]byte{"bin/a": []byte("\x7fELF a"), "bin/b": []byte("\x7fELF b"), "bin/c": []byte("\x7fELF c")}, "/bin/a")
	st, digest := scanned(t, img)
	if files, err := st.FileTable(t.Context(), digest); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a file table over the bound was kept: %d entries, %v", len(files), err)
	}
}

// scanned is the store of a server that scanned img (pushed to an
// in-process registry) and stopped, and img's digest.
func scanned(t *testing.T, img v1.Image) (*store.Store, string) {
	t.Helper()
	reg := registrytest.New(t)
	reg.Push(t, "shop/app:1", img)
	dir := t.TempDir()
	admin := bootstrap(t, dir)
	c, stop := startServerWith(t, dir, func(cfg *Config) { cfg.WatchInterval = time.Hour })
	var queued struct {
		Job int64 `json:"job"`
	}
	c.json("POST", "/api/v1/scans", admin.Token, map[string]string{"image": reg.Host + "/shop/app:1"}, http.StatusAccepted, &queued)
	if j := waitJob(c, admin.Token, queued.Job, 30*time.Second); j.Error != "" {
		t.Fatalf("scan: %+v", j)
	}
	stop()
	st, err := OpenStore(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, digestOf(t, img)
}
