package vulndb

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestChangeLog(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "osv.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.TrackChanges = true
	dir := t.TempDir()
	write := func(id, modified string) {
		t.Helper()
		rec := `{"id":"` + id + `","modified":"` + modified + `","affected":[{"package":{"ecosystem":"npm","name":"lodash"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"4.17.21"}]}]}]}`
		if err := os.WriteFile(filepath.Join(dir, id+".json"), []byte(rec), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("GHSA-1", "2024-01-01T00:00:00Z")
	write("GHSA-2", "2024-01-01T00:00:00Z")
	src := Source{Name: "npm", Location: dir}
	if _, err := db.Import(ctx, src); err != nil {
		t.Fatal(err)
	}
	ch, err := db.ChangesSince(ctx, "server")
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Records) != 2 || ch.Seq == 0 {
		t.Fatalf("first import: %d changes, seq %d; want 2", len(ch.Records), ch.Seq)
	}
	// Not advanced (a crash before Advance): the same changes again.
	again, _ := db.ChangesSince(ctx, "server")
	if len(again.Records) != 2 || again.Seq != ch.Seq {
		t.Fatalf("re-read: %d changes, seq %d", len(again.Records), again.Seq)
	}
	if err := db.Advance(ctx, "server", ch.Seq); err != nil {
		t.Fatal(err)
	}
	if ch, _ := db.ChangesSince(ctx, "server"); len(ch.Records) != 0 {
		t.Fatalf("after Advance: %d changes", len(ch.Records))
	}
	// A re-import of the same data changes nothing; a modified record is
	// one change.
	db.Import(ctx, src)
	write("GHSA-2", "2024-02-01T00:00:00Z")
	db.Import(ctx, src)
	ch, _ = db.ChangesSince(ctx, "server")
	if len(ch.Records) != 1 || ch.Records[0].ID != "GHSA-2" {
		t.Fatalf("after an update: %+v", ch.Records)
	}
	db.Advance(ctx, "server", ch.Seq)
	var left int
	db.sql.QueryRow("SELECT COUNT(*) FROM changes").Scan(&left)
	if left != 0 {
		t.Errorf("%d changes kept after every consumer read them", left)
	}
}
