package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// RecordError is one record of a package database (a dpkg stanza, a lock
// file entry, an rpm header) that could not be read. Line is the record's
// first line, or the damaged line, counted from 1; 0 when the format has no
// lines.
type RecordError struct {
	Line int
	Err  error
}

func (e *RecordError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return e.Err.Error()
}

func (e *RecordError) Unwrap() error { return e.Err }

// recordErrors is what a parser returns beside the packages it could read
// when some records could not be: each costs its own record only, and the
// packages returned with it are good.
type recordErrors []*RecordError

func (e recordErrors) Error() string {
	s := make([]string, len(e))
	for i, r := range e {
		s[i] = r.Error()
	}
	return fmt.Sprintf("%d damaged records: %s", len(e), strings.Join(s, "; "))
}

// add records a damaged record.
func (e *recordErrors) add(line int, format string, args ...any) {
	*e = append(*e, &RecordError{Line: line, Err: fmt.Errorf(format, args...)})
}

// err is nil when no record was damaged (a nil recordErrors in an error
// interface would not be).
func (e recordErrors) err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// Problem records package evidence in file n that could not be read (a
// record at line, or the whole file when line is 0): the inventory is then
// incomplete. It is also a warning that names the file, the line and the
// layer.
func (in *Input) Problem(cataloger string, n *layerfs.Node, line int, err error) {
	if r, ok := err.(*RecordError); ok {
		err = r.Err // the line is in the problem
	}
	in.problemAt(sbom.Problem{Cataloger: cataloger, Path: n.Path, Line: line, Layer: in.FS.LayerID(n.Layer), Message: err.Error()})
}

func (in *Input) problemAt(p sbom.Problem) {
	in.mu.Lock()
	in.problems = append(in.problems, p)
	in.warnings = append(in.warnings, p.String())
	in.mu.Unlock()
}

// errorLine is the line a parser's error points at, 0 when it names none.
func errorLine(data []byte, err error) int {
	var r *RecordError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	off := int64(-1)
	switch {
	case errors.As(err, &r):
		return r.Line
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return 0
	}
	return 1 + bytes.Count(data[:off], []byte("\n"))
}
