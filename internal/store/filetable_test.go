package store

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

func TestFileTable(t *testing.T) { eachBackend(t, testFileTable) }

// testFileTable: a stored table reads back as written, a second write
// replaces it, an unknown digest is ErrNotFound, and the table goes with
// its inventory.
func testFileTable(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, _ := newStore(t)
	const d = "sha256:aaaa"
	if _, err := s.FileTable(ctx, d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown digest: %v, want ErrNotFound", err)
	}
	if err := s.PutInventory(ctx, d, &sbom.SBOM{Schema: sbom.SchemaVersion}, nil); err != nil {
		t.Fatal(err)
	}
	files := []sbom.File{{Path: "/bin/sh", Type: "file", Mode: "0755", Size: 3, Layer: "sha256:l1", Digest: "sha256:1111"},
		{Path: "/bin/ash", Type: "symlink", Linkname: "sh"}}
	if err := s.PutFileTable(ctx, d, files); err != nil {
		t.Fatal(err)
	}
	got, err := s.FileTable(ctx, d)
	if err != nil || !slices.Equal(got, files) {
		t.Fatalf("FileTable = %+v, %v; want %+v", got, err, files)
	}
	if err := s.PutFileTable(ctx, d, files[:1]); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.FileTable(ctx, d); len(got) != 1 {
		t.Fatalf("after a second write: %+v", got)
	}
	if err := s.PutFileTable(ctx, "sha256:nope", files); err == nil {
		t.Error("a file table without its inventory was accepted")
	}
}
