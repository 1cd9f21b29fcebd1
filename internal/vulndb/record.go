package vulndb

import (
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/klauspost/compress/zstd"

	"github.com/bulwark-sec/bulwark/internal/osv"
)

// maxReferences is how many references a stored record keeps: enough for a
// report to link the advisory, without the dozens some records carry.
const maxReferences = 3

// maxRecordSize caps a decoded record (and a zip member or JSON file).
const maxRecordSize = 16 << 20

// The encoder and decoder are shared by every DB in the process; EncodeAll
// and DecodeAll are safe for concurrent use.
var (
	encoder = mustEncoder()
	decoder = mustDecoder()
)

func mustEncoder() *zstd.Encoder {
	e, err := zstd.NewWriter(nil,
		// "better" beats "best" here: with a dictionary, best spends its
		// time resetting large tables for every small record (50 times
		// slower) and ends up 1% larger.
		zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
		zstd.WithEncoderCRC(false), // SQLite pages and OCI digests already guard the bytes
		zstd.WithEncoderDictRaw(dictID, []byte(dictionary)),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), // one per import worker
	)
	if err != nil {
		panic(err)
	}
	return e
}

func mustDecoder() *zstd.Decoder {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(maxRecordSize),
		zstd.WithDecoderDictRaw(dictID, []byte(dictionary)),
	)
	if err != nil {
		panic(err)
	}
	return d
}

// slim returns the compact JSON stored for r: the record without details,
// schema_version and references past the first three.
func slim(r *osv.Record) ([]byte, error) {
	s := *r
	s.SchemaVersion = ""
	s.Details = ""
	if len(s.References) > maxReferences {
		s.References = s.References[:maxReferences]
	}
	return json.Marshal(&s)
}

// compress is what the data column holds for a record's slim JSON.
func compress(js []byte) []byte {
	return encoder.EncodeAll(js, make([]byte, 0, len(js)/2))
}

// decodeRecord reverses slim and compress; buf is reused for the JSON.
func decodeRecord(data, buf []byte) (*osv.Record, []byte, error) {
	js, err := decoder.DecodeAll(data, buf[:0])
	if err != nil {
		return nil, buf, fmt.Errorf("decompressing record: %w", err)
	}
	var r osv.Record
	if err := json.Unmarshal(js, &r); err != nil {
		return nil, js, fmt.Errorf("decoding record: %w", err)
	}
	return &r, js, nil
}

// pkgKey is one row of the affected table.
type pkgKey struct{ ecosystem, name string }

// indexKey is the (ecosystem, name) under which the affected table files a
// package: osv.Key, so that the queries osv.QueryFor builds find it.
// Matching still sees the record's own ecosystem string.
func indexKey(ecosystem, name string) pkgKey {
	eco, n := osv.Key(ecosystem, name)
	return pkgKey{eco, n}
}

// keys lists the distinct index keys of r's affected packages.
func keys(r *osv.Record) []pkgKey {
	var out []pkgKey
	seen := make(map[pkgKey]bool, len(r.Affected))
	for _, a := range r.Affected {
		k := indexKey(a.Package.Ecosystem, a.Package.Name)
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}
