package audit

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// newLog opens a SQLite database in a temporary directory with the audit
// table and n entries, appended one transaction each.
func newLog(t *testing.T, b backend, n int) (*sql.DB, []Entry) {
	t.Helper()
	ctx := context.Background()
	db := b.open(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	var out []Entry
	for i := range n {
		tx, err := b.begin(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		e, err := Append(ctx, tx, Entry{
			Time:   t0.Add(time.Duration(i) * time.Second),
			Actor:  "token:1 (ci)",
			Action: "certification.set",
			Object: fmt.Sprintf("sha256:%03d", i),
			Before: []byte(`{"status":"not_certified"}`),
			After:  fmt.Appendf(nil, `{"status":"certified","n":%d}`, i),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return db, out
}

func verify(t *testing.T, db *sql.DB) Report {
	t.Helper()
	rep, err := Verify(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestCleanChainVerifies(t *testing.T) { eachBackend(t, testCleanChainVerifies) }

func testCleanChainVerifies(t *testing.T, b backend) {
	db, entries := newLog(t, b, 10)
	if entries[0].Seq != 1 || string(entries[0].PrevHash) != string(make([]byte, 32)) {
		t.Errorf("first entry: seq %d, prev %x; want 1 and 32 zero bytes", entries[0].Seq, entries[0].PrevHash)
	}
	for i := 1; i < len(entries); i++ {
		if string(entries[i].PrevHash) != string(entries[i-1].Hash) || entries[i].Seq != int64(i+1) {
			t.Fatalf("entry %d does not chain to entry %d", i+1, i)
		}
	}
	rep := verify(t, db)
	if !rep.OK || rep.Entries != 10 || rep.LastSeq != 10 || string(rep.LastHash) != string(entries[9].Hash) {
		t.Errorf("Verify = %+v", rep)
	}
	empty, _ := newLog(t, b, 0)
	if rep := verify(t, empty); !rep.OK || rep.Entries != 0 {
		t.Errorf("Verify of an empty log = %+v", rep)
	}
}

func TestVerifyDetects(t *testing.T) { eachBackend(t, testVerifyDetects) }

func testVerifyDetects(t *testing.T, b backend) {
	for _, tc := range []struct {
		name    string
		tamper  string
		seq     int64
		problem string
	}{
		{"edited after", `UPDATE audit_log SET after = '{"status":"revoked"}' WHERE seq = 5`, 5, Edited},
		{"edited time", `UPDATE audit_log SET time = '2020-01-01T00:00:00Z' WHERE seq = 7`, 7, Edited},
		{"deleted entry", `DELETE FROM audit_log WHERE seq = 3`, 3, Missing},
		{"deleted first entry", `DELETE FROM audit_log WHERE seq = 1`, 1, Missing},
		{"swapped payloads", `UPDATE audit_log SET
			actor  = (SELECT actor  FROM audit_log o WHERE o.seq = CASE audit_log.seq WHEN 4 THEN 6 ELSE 4 END),
			object = (SELECT object FROM audit_log o WHERE o.seq = CASE audit_log.seq WHEN 4 THEN 6 ELSE 4 END),
			after  = (SELECT after  FROM audit_log o WHERE o.seq = CASE audit_log.seq WHEN 4 THEN 6 ELSE 4 END)
			WHERE seq IN (4, 6)`, 4, Edited},
		{"swapped rows", `UPDATE audit_log SET seq = -4 WHERE seq = 4; UPDATE audit_log SET seq = 4 WHERE seq = 6; UPDATE audit_log SET seq = 6 WHERE seq = -4`, 4, Reordered},
		{"deleted and renumbered", `DELETE FROM audit_log WHERE seq = 3; UPDATE audit_log SET seq = seq - 1 WHERE seq > 3`, 3, Reordered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := newLog(t, b, 10)
			if _, err := db.Exec(tc.tamper); err != nil {
				t.Fatal(err)
			}
			rep := verify(t, db)
			if rep.OK || rep.BrokenSeq != tc.seq || rep.Problem != tc.problem {
				t.Errorf("Verify = %+v, want %s at seq %d", rep, tc.problem, tc.seq)
			}
			t.Log(rep.Reason)
		})
	}
}

func TestAnchorDetectsTruncation(t *testing.T) { eachBackend(t, testAnchorDetectsTruncation) }

func testAnchorDetectsTruncation(t *testing.T, b backend) {
	ctx := context.Background()
	db, entries := newLog(t, b, 10)
	path := AnchorPath(filepath.Join(t.TempDir(), "bulwark.db"))
	if err := WriteAnchor(path, entries[9]); err != nil {
		t.Fatal(err)
	}
	anchor, err := ReadAnchor(path)
	if err != nil {
		t.Fatal(err)
	}
	if anchor.Seq != 10 || string(anchor.Hash) != string(entries[9].Hash) {
		t.Fatalf("ReadAnchor = %+v", anchor)
	}
	rep, err := VerifyAnchored(ctx, db, anchor)
	if err != nil || !rep.OK {
		t.Fatalf("VerifyAnchored of an intact log = %+v, %v", rep, err)
	}

	if _, err := db.Exec(`DELETE FROM audit_log WHERE seq > 7`); err != nil {
		t.Fatal(err)
	}
	if rep := verify(t, db); !rep.OK {
		t.Fatalf("without the anchor a truncated chain still verifies (by design): %+v", rep)
	}
	rep, err = VerifyAnchored(ctx, db, anchor)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Problem != Truncated || rep.BrokenSeq != 8 {
		t.Errorf("VerifyAnchored of a truncated log = %+v, want truncated at 8", rep)
	}

	// Truncated, then refilled with a fresh, self-consistent tail.
	for i := range 3 {
		if _, err := Append(ctx, db, Entry{Actor: "attacker", Action: "x", Object: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err = VerifyAnchored(ctx, db, anchor)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.BrokenSeq != 10 {
		t.Errorf("VerifyAnchored of a rewritten tail = %+v, want broken at 10", rep)
	}
}

func TestHashEncodingIsUnambiguous(t *testing.T) {
	zero := make([]byte, 32)
	a := hash(1, "t", "ab", "c", "o", nil, nil, zero)
	b := hash(1, "t", "a", "bc", "o", nil, nil, zero)
	if string(a) == string(b) {
		t.Error("moving bytes between fields kept the hash")
	}
}

func TestAppendConcurrent(t *testing.T) { eachBackend(t, testAppendConcurrent) }

func testAppendConcurrent(t *testing.T, b backend) {
	ctx := context.Background()
	db, _ := newLog(t, b, 0)
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			tx, err := b.begin(ctx, db)
			if err != nil {
				errs <- err
				return
			}
			if _, err := Append(ctx, tx, Entry{Actor: "w", Action: "a", Object: fmt.Sprint(i)}); err != nil {
				tx.Rollback()
				errs <- err
				return
			}
			errs <- tx.Commit()
		}()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if rep := verify(t, db); !rep.OK || rep.Entries != 20 {
		t.Errorf("Verify after concurrent appends = %+v", rep)
	}
}
