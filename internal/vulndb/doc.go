// Package vulndb is Bulwark's advisory database: OSV records from OSV's
// per-ecosystem exports (all.zip), local zip files and directories of JSON,
// kept in one SQLite file and looked up by (ecosystem, package name).
//
// Sources in, lookups out:
//
//	path, err := vulndb.DefaultPath()
//	db, err := vulndb.Open(path)
//	res, err := db.Import(ctx, vulndb.ParseSource("https://osv-vulnerabilities.storage.googleapis.com/Go/all.zip"))
//	fmt.Println(res) // Go: 4293 records (4293 new, 0 updated, 0 unchanged, 0 skipped)
//	recs, err := db.Lookup(ctx, "Go", "golang.org/x/net")
//
// Each record is stored once, re-encoded as compact JSON without the fields
// matching and reporting never read (details; references past the first
// three) and compressed with zstd against a small built-in dictionary of
// OSV's JSON vocabulary. The affected table holds one row per distinct
// (ecosystem, package) a record names; it is the index Lookup reads.
//
// An import is one SQLite transaction in WAL mode: readers keep seeing the
// previous database until it commits, and an error or a cancelled context
// rolls it back. It is incremental: a record is rewritten only when its
// modified time changed, and a record that disappeared from a source's
// export is removed only when that source had written it.
//
// Export writes a consistent copy of the database; Push and Pull move such a
// copy through an OCI registry for air-gapped installations.
package vulndb
