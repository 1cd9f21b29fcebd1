package vulndb

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bulwark-sec/bulwark/internal/failpoint"
	"github.com/bulwark-sec/bulwark/internal/osv"
)

// progressEvery is how many records go by between progress lines.
var progressEvery = 10000

// MaxSkips is how many skipped records a Result lists in full; the rest are
// only counted.
const MaxSkips = 20

// Result is what one import did.
type Result struct {
	Source   string `json:"source"`
	Location string `json:"location"`
	// NotModified is set when the server answered that the export is the
	// one imported last time (ETag); nothing else was done.
	NotModified bool `json:"notModified,omitempty"`
	Records     int  `json:"records"` // valid records read
	Inserted    int  `json:"inserted"`
	Updated     int  `json:"updated"`
	Unchanged   int  `json:"unchanged"`
	Removed     int  `json:"removed"` // gone from the export, deleted
	Skipped     int  `json:"skipped"` // malformed, unreadable or duplicate
	// Skips are the first MaxSkips skipped records, in reading order.
	Skips    []Skip        `json:"skips,omitempty"`
	Duration time.Duration `json:"-"` // encoded as durationSeconds (result_json.go)
	// Changed are the records inserted or updated, as now stored, in
	// reading order (removed records are not included: they are only
	// counted). Re-evaluation takes them as its delta. Not encoded.
	Changed []*osv.Record `json:"-"`
}

// Skip names a record that was not imported and why.
type Skip struct {
	Name   string `json:"name"` // zip member or file, relative to the source
	Reason string `json:"reason"`
}

func (s Skip) String() string { return s.Name + ": " + s.Reason }

// String is the one-line summary, e.g.
// "Go: 4293 records (4293 new, 0 updated, 0 unchanged, 2 skipped)".
func (r Result) String() string {
	if r.NotModified {
		return r.Source + ": not modified since the last update"
	}
	s := fmt.Sprintf("%s: %d records (%d new, %d updated, %d unchanged, %d skipped", r.Source, r.Records, r.Inserted, r.Updated, r.Unchanged, r.Skipped)
	if r.Removed > 0 {
		s += fmt.Sprintf(", %d removed", r.Removed)
	}
	return s + ")"
}

func (r *Result) skip(name, reason string) {
	r.Skipped++
	if len(r.Skips) < MaxSkips {
		r.Skips = append(r.Skips, Skip{Name: name, Reason: reason})
	}
}

// Import reads every record of src into the database in one transaction:
// new records are inserted, records whose modified time changed are
// rewritten, records of src that are no longer in it are removed.
// Malformed records are skipped and listed in the Result. On error,
// including a cancelled ctx, nothing changes.
func (db *DB) Import(ctx context.Context, src Source) (Result, error) {
	start := time.Now()
	res := Result{Source: src.Name, Location: src.Location}
	if src.Name == "" {
		return res, fmt.Errorf("importing %q: source has no name", src.Location)
	}
	var (
		read func(context.Context, func(entry) error) error
		etag string
	)
	switch {
	case isURL(src.Location):
		file, newETag, notModified, err := db.download(ctx, src)
		if err != nil {
			return res, err
		}
		if notModified {
			res.NotModified = true
			res.Duration = time.Since(start)
			return res, db.touch(ctx, src)
		}
		defer os.Remove(file)
		etag = newETag
		read = zipReader(file, src.Location, db.maxArchive())
	default:
		fi, err := os.Stat(src.Location)
		if err != nil {
			return res, fmt.Errorf("importing %s: %w", src.Name, err)
		}
		switch {
		case fi.IsDir():
			read = func(ctx context.Context, fn func(entry) error) error { return readDir(ctx, src.Location, fn) }
		case strings.HasSuffix(strings.ToLower(src.Location), ".json"):
			read = func(ctx context.Context, fn func(entry) error) error {
				e := entry{name: fi.Name()}
				e.data, e.err = readFile(src.Location)
				return fn(e)
			}
		default:
			read = zipReader(src.Location, src.Location, db.maxArchive())
		}
	}
	err := db.importFrom(ctx, src, etag, read, &res)
	res.Duration = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("importing %s: %w", src.Name, err)
	}
	db.checkpoint(ctx)
	return res, nil
}

func (db *DB) maxArchive() int64 {
	if db.MaxArchiveSize > 0 {
		return db.MaxArchiveSize
	}
	return DefaultMaxArchiveSize
}

func zipReader(file, label string, maxTotal int64) func(context.Context, func(entry) error) error {
	return func(ctx context.Context, fn func(entry) error) error {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		return readZip(ctx, f, label, maxTotal, fn)
	}
}

// stored is what the database holds of a record before the import.
type stored struct {
	modified string
	source   string
}

// parsed is one entry after the parse workers.
type parsed struct {
	seq    int // reading order
	name   string
	id     string // also set for records that failed to parse, when known
	rec    *osv.Record
	keys   []pkgKey
	js     []byte // slim JSON; nil when unchanged
	data   []byte // js compressed; nil when unchanged or still to compare
	reason string // why the entry is skipped
}

// importFrom runs the import pipeline: read (one goroutine) -> parse and
// compress (one per CPU) -> write (this goroutine, in the transaction).
func (db *DB) importFrom(ctx context.Context, src Source, etag string, read func(context.Context, func(entry) error) error, res *Result) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	defer tx.Rollback() // after Commit, a no-op
	w, err := newWriter(ctx, tx, src, res)
	if err != nil {
		return err
	}
	if db.TrackChanges {
		if w.logChange, err = tx.PrepareContext(ctx, `INSERT INTO changes (id) VALUES (?)`); err != nil {
			return fmt.Errorf("preparing statements: %w", err)
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	entries := make(chan entry, 256)
	out := make(chan parsed, 256)
	g.Go(func() error {
		defer close(entries)
		seq := 0
		return read(gctx, func(e entry) error {
			e.seq = seq
			seq++
			select {
			case entries <- e:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	})
	var workers sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		workers.Add(1)
		g.Go(func() error {
			defer workers.Done()
			for e := range entries {
				select {
				case out <- parseEntry(e, w.existing):
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		})
	}
	go func() { workers.Wait(); close(out) }()
	g.Go(func() error {
		// Write in reading order, whatever order the workers finish in, so
		// that duplicates and the list of skips do not depend on timing.
		next, pending := 0, map[int]parsed{}
		for p := range out {
			pending[p.seq] = p
			for {
				p, ok := pending[next]
				if !ok {
					break
				}
				delete(pending, next)
				next++
				if err := w.write(gctx, p); err != nil {
					return err
				}
				if db.Progress != nil && next%progressEvery == 0 {
					fmt.Fprintf(db.Progress, "%s: %d records read\n", src.Name, next)
				}
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		for range out { // let the workers finish
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr // database/sql closed the transaction's statements: say why
		}
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := w.finish(ctx, etag, db.now()); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// parseEntry parses and, unless it is unchanged, compresses one record.
func parseEntry(e entry, existing map[string]stored) parsed {
	p := parsed{seq: e.seq, name: e.name}
	if e.err != nil {
		p.reason = e.err.Error()
		return p
	}
	r, err := osv.Parse(e.data)
	if err != nil {
		p.reason = err.Error()
		var id struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(e.data, &id) == nil {
			p.id = strings.TrimSpace(id.ID)
		}
		return p
	}
	p.id, p.rec, p.keys = r.ID, r, keys(r)
	old, exists := existing[r.ID]
	if exists && sameModified(old.modified, r.Modified) {
		return p // unchanged
	}
	if p.js, err = slim(r); err != nil {
		p.reason = fmt.Sprintf("encoding %s: %v", r.ID, err)
		return p
	}
	if exists && old.modified == r.Modified {
		return p // a time that says nothing: the writer compares contents
	}
	p.data = compress(p.js)
	return p
}

// sameModified reports whether two modified times are the same instant
// and a real one. The Go vulnerability database publishes
// "0001-01-01T00:00:00Z" for every record; such times say nothing, and the
// records are compared by content instead.
func sameModified(a, b string) bool {
	ta, err := osv.ParseTime(a)
	if err != nil || ta.Year() <= 1 {
		return false
	}
	tb, err := osv.ParseTime(b)
	return err == nil && ta.Equal(tb)
}

// writer applies parsed records inside the import transaction.
type writer struct {
	tx       *sql.Tx
	src      Source
	res      *Result
	existing map[string]stored // before the import; read-only once workers run
	seen     map[string]string // id -> entry name, this import

	upsert, insertKey, deleteKey, selectData, deleteRecord *sql.Stmt
	logChange                                              *sql.Stmt // nil unless TrackChanges
}

func newWriter(ctx context.Context, tx *sql.Tx, src Source, res *Result) (*writer, error) {
	w := &writer{tx: tx, src: src, res: res, existing: map[string]stored{}, seen: map[string]string{}}
	rows, err := tx.QueryContext(ctx, "SELECT id, modified, source FROM advisories")
	if err != nil {
		return nil, fmt.Errorf("reading stored records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var s stored
		if err := rows.Scan(&id, &s.modified, &s.source); err != nil {
			return nil, fmt.Errorf("reading stored records: %w", err)
		}
		w.existing[id] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading stored records: %w", err)
	}
	for _, s := range []struct {
		stmt **sql.Stmt
		q    string
	}{
		{&w.upsert, `INSERT INTO advisories (id, modified, source, withdrawn, data) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET modified = excluded.modified, source = excluded.source,
			withdrawn = excluded.withdrawn, data = excluded.data`},
		{&w.insertKey, `INSERT OR IGNORE INTO affected (ecosystem, name, id) VALUES (?, ?, ?)`},
		{&w.deleteKey, `DELETE FROM affected WHERE ecosystem = ? AND name = ? AND id = ?`},
		{&w.selectData, `SELECT data FROM advisories WHERE id = ?`},
		{&w.deleteRecord, `DELETE FROM advisories WHERE id = ?`},
	} {
		if *s.stmt, err = tx.PrepareContext(ctx, s.q); err != nil {
			return nil, fmt.Errorf("preparing statements: %w", err)
		}
	}
	return w, nil
}

func (w *writer) write(ctx context.Context, p parsed) error {
	if p.id != "" {
		if first, dup := w.seen[p.id]; dup {
			w.res.skip(p.name, fmt.Sprintf("duplicate of %s (%s)", p.id, first))
			return nil
		}
		w.seen[p.id] = p.name
	}
	if p.reason != "" {
		w.res.skip(p.name, p.reason)
		return nil
	}
	w.res.Records++
	_, exists := w.existing[p.id]
	if !exists {
		w.res.Inserted++
		return w.put(ctx, p, nil)
	}
	if p.js == nil { // the same, real, modified time
		w.res.Unchanged++
		return nil
	}
	data, err := w.storedData(ctx, p.id)
	if err != nil {
		return err
	}
	oldJS, err := decoder.DecodeAll(data, nil)
	if err != nil {
		return fmt.Errorf("reading stored %s: %w", p.id, err)
	}
	if p.data == nil {
		// A modified time that says nothing ("0001-01-01T00:00:00Z"):
		// compare what would be stored.
		if bytes.Equal(oldJS, p.js) {
			w.res.Unchanged++
			return nil
		}
		p.data = compress(p.js)
	}
	var oldRec osv.Record
	if err := json.Unmarshal(oldJS, &oldRec); err != nil {
		return fmt.Errorf("reading stored %s: %w", p.id, err)
	}
	w.res.Updated++
	return w.put(ctx, p, &oldRec)
}

func (w *writer) storedData(ctx context.Context, id string) ([]byte, error) {
	var data []byte
	if err := w.selectData.QueryRowContext(ctx, id).Scan(&data); err != nil {
		return nil, fmt.Errorf("reading stored %s: %w", id, err)
	}
	return data, nil
}

// stored decodes the record the database holds under id.
func (w *writer) stored(ctx context.Context, id string) (*osv.Record, error) {
	data, err := w.storedData(ctx, id)
	if err != nil {
		return nil, err
	}
	r, _, err := decodeRecord(data, nil)
	if err != nil {
		return nil, fmt.Errorf("reading stored %s: %w", id, err)
	}
	return r, nil
}

// put writes p, replacing old (nil for a new record) and its index rows.
func (w *writer) put(ctx context.Context, p parsed, old *osv.Record) error {
	w.res.Changed = append(w.res.Changed, p.rec)
	withdrawn := 0
	if p.rec.IsWithdrawn() {
		withdrawn = 1
	}
	if _, err := w.upsert.ExecContext(ctx, p.id, p.rec.Modified, w.src.Name, withdrawn, p.data); err != nil {
		return fmt.Errorf("writing %s: %w", p.id, err)
	}
	if w.logChange != nil {
		if _, err := w.logChange.ExecContext(ctx, p.id); err != nil {
			return fmt.Errorf("logging the change of %s: %w", p.id, err)
		}
	}
	failpoint.Hit("vulndb.import.write")
	keep := map[pkgKey]bool{}
	for _, k := range p.keys {
		keep[k] = true
	}
	if old != nil {
		for _, k := range keys(old) {
			if keep[k] {
				delete(keep, k) // already indexed
				continue
			}
			if _, err := w.deleteKey.ExecContext(ctx, k.ecosystem, k.name, p.id); err != nil {
				return fmt.Errorf("writing %s: %w", p.id, err)
			}
		}
	}
	for _, k := range p.keys {
		if !keep[k] {
			continue
		}
		if _, err := w.insertKey.ExecContext(ctx, k.ecosystem, k.name, p.id); err != nil {
			return fmt.Errorf("writing %s: %w", p.id, err)
		}
	}
	return nil
}

// finish removes the source's records that were not seen and records the
// source.
func (w *writer) finish(ctx context.Context, etag string, now time.Time) error {
	if w.res.Records == 0 {
		for _, s := range w.existing {
			if s.source == w.src.Name {
				return fmt.Errorf("%w in %s; keeping the records stored from it", errNoRecords, w.src.Location)
			}
		}
	}
	for id, s := range w.existing {
		if s.source != w.src.Name {
			continue
		}
		if _, ok := w.seen[id]; ok {
			continue
		}
		old, err := w.stored(ctx, id)
		if err != nil {
			return err
		}
		for _, k := range keys(old) {
			if _, err := w.deleteKey.ExecContext(ctx, k.ecosystem, k.name, id); err != nil {
				return fmt.Errorf("removing %s: %w", id, err)
			}
		}
		if _, err := w.deleteRecord.ExecContext(ctx, id); err != nil {
			return fmt.Errorf("removing %s: %w", id, err)
		}
		w.res.Removed++
	}
	var owned int
	if err := w.tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM advisories WHERE source = ?", w.src.Name).Scan(&owned); err != nil {
		return fmt.Errorf("counting records: %w", err)
	}
	_, err := w.tx.ExecContext(ctx, `INSERT INTO sources (name, url, updated, records, skipped, etag) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET url = excluded.url, updated = excluded.updated,
		records = excluded.records, skipped = excluded.skipped, etag = excluded.etag`,
		w.src.Name, w.src.Location, now.Format(time.RFC3339Nano), owned, w.res.Skipped, etag)
	if err != nil {
		return fmt.Errorf("recording source: %w", err)
	}
	return nil
}

// touch records a not-modified check as an update of src.
func (db *DB) touch(ctx context.Context, src Source) error {
	_, err := db.sql.ExecContext(ctx, `UPDATE sources SET updated = ? WHERE name = ?`, db.now().Format(time.RFC3339Nano), src.Name)
	if err != nil {
		return fmt.Errorf("recording source %s: %w", src.Name, err)
	}
	return nil
}

// errNoRecords refuses an import that would empty a source: an export
// without one valid record is a broken export, not a source whose every
// advisory was withdrawn.
var errNoRecords = errors.New("no valid records")
