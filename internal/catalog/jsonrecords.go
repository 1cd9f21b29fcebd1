package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// jsonRecord is one member of a JSON object (Key set) or one element of a
// JSON array, with the number of the line it starts on.
type jsonRecord struct {
	Key   string
	Value json.RawMessage
	Line  int
}

// jsonRecords reads the records of the object or array under the top-level
// member key of a JSON document (the document itself when key is ""), each
// on its own, so that a damaged record costs that record only: it is
// reported in bad and the others are returned.
//
// Lock files and manifests are written indented, one record starting on a
// line at one indentation (npm, Composer and dotnet all do), and that layout
// is what separates the records: a record is the lines from its first line
// to the next record's, and the first value in them is decoded. Damage inside
// a record (a line cut short, garbage, a stray bracket) cannot move another
// record's boundary, as every line of a record but its first and last is
// indented deeper. A document written on one line is read as a token stream
// instead: the records before a syntax error are kept, the error is reported.
// err is a document that has no such object or array and does not parse.
func jsonRecords(data []byte, key string) (recs []jsonRecord, bad recordErrors, err error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // dotnet writes a byte order mark
	lines := splitLines(data)
	start, found := jsonContainerLine(lines, key)
	if !found {
		return jsonStreamRecords(data, key)
	}
	open := strings.TrimSpace(lines[start].text)
	open = open[len(open)-1:]
	// The container ends at the first line not indented deeper than its
	// opening line (its closing bracket); its records start at the least
	// indentation inside, which damage cannot lower: a damaged line keeps
	// the indentation of the line it replaced.
	end, elemIndent := len(lines), -1
	for k := start + 1; k < len(lines); k++ {
		text := lines[k].text
		if strings.TrimSpace(text) == "" {
			continue
		}
		ind := indentOf(text)
		if ind <= indentOf(lines[start].text) {
			end = k
			break
		}
		if elemIndent < 0 || ind < elemIndent {
			elemIndent = ind
		}
	}
	var chunkStart []int
	for k := start + 1; k < end; k++ {
		text := lines[k].text
		if strings.TrimSpace(text) == "" || indentOf(text) != elemIndent {
			continue
		}
		body := text[elemIndent:]
		if open == "{" && body[0] == '"' || open == "[" && body[0] != ']' && body[0] != '}' {
			chunkStart = append(chunkStart, k)
		} else if len(chunkStart) == 0 {
			bad.add(k+1, "not the start of a record")
		}
	}
	for i, k := range chunkStart {
		last := end
		if i+1 < len(chunkStart) {
			last = chunkStart[i+1]
		}
		chunk := data[lines[k].off:lines[last-1].end]
		rec, err := jsonChunk(chunk, open == "{")
		if err != nil {
			bad.add(k+1, "%v", err)
			continue
		}
		rec.Line = k + 1
		recs = append(recs, rec)
	}
	// A valid document laid out otherwise (two records on a line) is read
	// whole as well, and the reading that finds more records wins: damage
	// that happens to leave valid JSON cannot hide the records after it.
	if json.Valid(data) {
		if all, allBad, err := jsonStreamRecords(data, key); err == nil && len(all) > len(recs) {
			return all, allBad, nil
		}
	}
	return recs, bad, nil
}

// jsonChunk decodes the first record of chunk: "key": value for an object
// member, value for an array element. What follows it is not read.
func jsonChunk(chunk []byte, member bool) (jsonRecord, error) {
	var rec jsonRecord
	if member {
		dec := json.NewDecoder(bytes.NewReader(chunk))
		if err := dec.Decode(&rec.Key); err != nil {
			return rec, fmt.Errorf("record does not parse: %w", err)
		}
		rest := bytes.TrimLeft(chunk[dec.InputOffset():], " \t\r\n")
		var ok bool
		if chunk, ok = bytes.CutPrefix(rest, []byte(":")); !ok {
			return rec, errors.New("record does not parse: no colon after its name")
		}
	}
	if err := json.NewDecoder(bytes.NewReader(chunk)).Decode(&rec.Value); err != nil {
		return rec, fmt.Errorf("record does not parse: %w", err)
	}
	return rec, nil
}

// jsonContainerLine finds the line that opens the records: the document's
// first line ("{" or "[") when key is "", else a top-level member line
// `"key": {` or `"key": [`. found is false when the document is not laid
// out that way (or has no such member).
func jsonContainerLine(lines []line, key string) (int, bool) {
	root := -1
	for k, l := range lines {
		if strings.TrimSpace(l.text) != "" {
			root = k
			break
		}
	}
	if root < 0 {
		return 0, false
	}
	rootText := strings.TrimSpace(lines[root].text)
	if key == "" {
		return root, rootText == "{" || rootText == "["
	}
	if rootText != "{" {
		return 0, false
	}
	memberIndent := -1
	re := regexp.MustCompile(`^"` + regexp.QuoteMeta(key) + `"\s*:\s*[\[{]$`)
	for k := root + 1; k < len(lines); k++ {
		text := lines[k].text
		if strings.TrimSpace(text) == "" {
			continue
		}
		ind := indentOf(text)
		if memberIndent < 0 {
			memberIndent = ind
		}
		if ind == memberIndent && re.MatchString(strings.TrimSpace(text)) {
			return k, true
		}
	}
	return 0, false
}

// jsonStreamRecords reads a document that is not laid out a record a line.
func jsonStreamRecords(data []byte, key string) (recs []jsonRecord, bad recordErrors, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	base := int64(0) // where dec's input starts in data
	lineAt := func() int { return 1 + bytes.Count(data[:base+dec.InputOffset()], []byte("\n")) }
	fail := func(err error) ([]jsonRecord, recordErrors, error) {
		if len(recs) == 0 && len(bad) == 0 {
			return nil, nil, &RecordError{Line: lineAt(), Err: err}
		}
		bad.add(lineAt(), "%v", err)
		return recs, bad, nil
	}
	if key != "" {
		tok, err := dec.Token()
		if err != nil {
			return fail(err)
		}
		if tok != json.Delim('{') {
			return nil, nil, errors.New("not a JSON object")
		}
		for {
			tok, err := dec.Token()
			if err != nil {
				return fail(err)
			}
			if tok == json.Delim('}') {
				return nil, nil, nil // no such member
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return fail(err)
			}
			if tok == key {
				base += dec.InputOffset() - int64(len(raw))
				dec = json.NewDecoder(bytes.NewReader(raw))
				break
			}
		}
	}
	tok, err := dec.Token()
	if err != nil {
		return fail(err)
	}
	delim, ok := tok.(json.Delim)
	if !ok || delim != '{' && delim != '[' {
		return nil, nil, nil // null, or a value that holds no records
	}
	for dec.More() {
		var rec jsonRecord
		rec.Line = lineAt()
		if delim == '{' {
			tok, err := dec.Token()
			if err != nil {
				return fail(err)
			}
			rec.Key, _ = tok.(string)
		}
		if err := dec.Decode(&rec.Value); err != nil {
			return fail(err)
		}
		recs = append(recs, rec)
	}
	if _, err := dec.Token(); err != nil && !errors.Is(err, io.EOF) {
		return fail(err)
	}
	return recs, bad, nil
}

// line is one line of a file: its text (without the newline) and where it
// starts and ends (after the newline) in the file.
type line struct {
	text     string
	off, end int
}

func splitLines(data []byte) []line {
	var out []line
	off := 0
	for raw := range bytes.Lines(data) {
		out = append(out, line{text: strings.TrimRight(string(raw), "\r\n"), off: off, end: off + len(raw)})
		off += len(raw)
	}
	return out
}

func indentOf(s string) int { return len(s) - len(strings.TrimLeft(s, " \t")) }
