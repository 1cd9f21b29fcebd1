package pgtest

import (
	"database/sql"
	"strings"
	"testing"
)

func TestStart(t *testing.T) {
	dsn := Start(t)
	if !strings.HasPrefix(dsn, "postgres://postgres@127.0.0.1:") {
		t.Errorf("dsn = %s", dsn)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var addr, fsync string
	if err := db.QueryRow("SHOW listen_addresses").Scan(&addr); err != nil {
		t.Fatal(err)
	}
	if addr != "127.0.0.1" {
		t.Errorf("listen_addresses = %q", addr)
	}
	db.QueryRow("SHOW fsync").Scan(&fsync)
	if fsync != "off" {
		t.Errorf("fsync = %q", fsync)
	}
	if _, err := db.Exec("CREATE TABLE x (a int)"); err != nil {
		t.Fatal(err)
	}
	// A second database on the same server is fresh.
	db2, err := sql.Open("pgx", Start(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	var n int
	if err := db2.QueryRow("SELECT count(*) FROM pg_tables WHERE tablename = 'x'").Scan(&n); err != nil || n != 0 {
		t.Errorf("second database sees table x: n=%d err=%v", n, err)
	}
}
