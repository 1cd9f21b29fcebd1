package vulndb

import (
	"context"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// exportServer serves one zip at /npm/all.zip with an ETag, as OSV's bucket
// does; cut makes it send half the bytes and drop the connection.
type exportServer struct {
	mu    sync.Mutex
	zip   []byte
	cut   bool
	full  int // complete 200 answers
	conds int // 304 answers
}

func (s *exportServer) set(zip []byte, cut bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zip, s.cut = zip, cut
}

func (s *exportServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	zip, cut := s.zip, s.cut
	s.mu.Unlock()
	etag := fmt.Sprintf(`"%d-%d"`, len(zip), crc32.ChecksumIEEE(zip))
	if r.Header.Get("If-None-Match") == etag {
		s.mu.Lock()
		s.conds++
		s.mu.Unlock()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Length", strconv.Itoa(len(zip)))
	if cut {
		w.Write(zip[:len(zip)/2])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	w.Write(zip)
	s.mu.Lock()
	s.full++
	s.mu.Unlock()
}

func TestImportURLInterrupted(t *testing.T) {
	old := testRecords(t, "osv/npm")
	srv := &exportServer{zip: zipBytes(t, old)}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	db := openTestDB(t)
	src := ParseSource(ts.URL + "/npm/all.zip")
	res := mustImport(t, db, src)
	if res.Inserted != 7 || src.Name != "npm" {
		t.Fatalf("first import = %s", res)
	}

	// the next export changes every record, and the download breaks off
	updated := testRecords(t, "osv/npm")
	for i := range updated {
		updated[i].data = edit(t, updated[i].data, func(r map[string]any) {
			r["modified"] = "2030-01-01T00:00:00Z"
			r["summary"] = "new"
		})
	}
	srv.set(zipBytes(t, updated), true)
	if _, err := db.Import(context.Background(), src); err == nil {
		t.Fatal("import of a cut-off download succeeded")
	} else {
		t.Logf("cut-off download: %v", err)
	}
	got, err := db.Lookup(context.Background(), "npm", "lodash")
	if err != nil || len(got) != 3 || got[0].Summary == "new" {
		t.Fatalf("after a failed update, lodash = %v (%v), want the old records", got, err)
	}
	if left := leftovers(t, filepath.Dir(db.Path())); len(left) != 0 {
		t.Errorf("files left next to the database: %v", left)
	}

	// the same database, opened again, still answers
	db.Close()
	db2, err := Open(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	wantIDs(t, db2, "npm", "minimist", "GHSA-vh95-rmgr-6w4m", "GHSA-xvch-5gv4-984h")

	// and the next, complete, download goes through
	srv.set(zipBytes(t, updated), false)
	res, err = db2.Import(context.Background(), src)
	if err != nil || res.Updated != 7 {
		t.Fatalf("import after the failure = %s, %v", res, err)
	}
}

func TestImportURLNotModified(t *testing.T) {
	srv := &exportServer{zip: zipBytes(t, testRecords(t, "osv/npm"))}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	db := openTestDB(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return now }
	src := ParseSource(ts.URL + "/npm/all.zip")
	mustImport(t, db, src)

	now = now.Add(6 * time.Hour)
	res := mustImport(t, db, src)
	if !res.NotModified || res.String() != "npm: not modified since the last update" {
		t.Errorf("second import = %+v, want not modified", res)
	}
	if srv.full != 1 || srv.conds != 1 {
		t.Errorf("server answered %d downloads and %d not-modified, want 1 and 1", srv.full, srv.conds)
	}
	st, err := db.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Sources[0].Updated.Equal(now) || st.Sources[0].Records != 7 {
		t.Errorf("source after a not-modified check = %+v, want updated %v", st.Sources[0], now)
	}

	// a changed export is downloaded again
	srv.set(zipBytes(t, testRecords(t, "osv/npm")[1:]), false)
	res = mustImport(t, db, src)
	if res.NotModified || res.Removed != 1 {
		t.Errorf("import of a changed export = %s", res)
	}
	if left := leftovers(t, filepath.Dir(db.Path())); len(left) != 0 {
		t.Errorf("files left next to the database: %v", left)
	}
}

func TestImportURLErrors(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	defer ts.Close()
	db := openTestDB(t)
	_, err := db.Import(context.Background(), ParseSource(ts.URL+"/Nope/all.zip"))
	if err == nil || err.Error() != "fetching "+ts.URL+"/Nope/all.zip: 404 Not Found" {
		t.Errorf("err = %v", err)
	}
	db.MaxArchiveSize = 100
	srv := &exportServer{zip: zipBytes(t, testRecords(t, "osv/npm"))}
	ts2 := httptest.NewServer(srv)
	defer ts2.Close()
	if _, err := db.Import(context.Background(), ParseSource(ts2.URL+"/npm/all.zip")); err == nil {
		t.Error("download over the size limit succeeded")
	}
	if left := leftovers(t, filepath.Dir(db.Path())); len(left) != 0 {
		t.Errorf("files left next to the database: %v", left)
	}
}
