package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrMalformedCheckpoint is returned by ReadCheckpoints for a line of a
// checkpoint log that is not one checkpoint: a damaged or forged log.
var ErrMalformedCheckpoint = errors.New("malformed checkpoint")

// maxCheckpointLine bounds a line of a checkpoint log; one checkpoint is
// about 250 bytes.
const maxCheckpointLine = 4096

// AppendCheckpoint appends c to the checkpoint log at path as one JSON
// line (created 0600), with one write on a file opened O_APPEND, then
// syncs it. Earlier lines are never rewritten: the file can live where
// only appending is allowed (chattr +a, a log shipper's spool, another
// mount).
func AppendCheckpoint(path string, c Checkpoint) error {
	line, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding checkpoint %d: %w", c.Seq, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening the checkpoint log %q: %w", path, err)
	}
	_, werr := f.Write(append(line, '\n'))
	if err := f.Sync(); werr == nil {
		werr = err
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		return fmt.Errorf("appending checkpoint %d to %q: %w", c.Seq, path, werr)
	}
	return nil
}

// ReadCheckpoints reads the checkpoint log at path. Signatures are not
// checked here (VerifyEvidence does). Every line must be exactly one
// checkpoint object with no unknown field; otherwise the error wraps
// ErrMalformedCheckpoint and names the line. The error wraps
// fs.ErrNotExist when there is no log.
func ReadCheckpoints(path string) ([]Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the checkpoint log %q: %w", path, err)
	}
	defer f.Close()
	return DecodeCheckpoints(f, path)
}

// DecodeCheckpoints reads a checkpoint log (JSON lines) from r; name is
// what errors call it.
func DecodeCheckpoints(r io.Reader, name string) ([]Checkpoint, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxCheckpointLine)
	var out []Checkpoint
	for n := 1; sc.Scan(); n++ {
		c, err := DecodeCheckpoint(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("reading %s line %d: %w", name, n, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("reading %s after line %d: %w: a line is over %d bytes", name, len(out), ErrMalformedCheckpoint, maxCheckpointLine)
		}
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return out, nil
}

// DecodeCheckpoint decodes one checkpoint object strictly: no unknown
// field, nothing after it, every field present. The error wraps
// ErrMalformedCheckpoint.
func DecodeCheckpoint(data []byte) (Checkpoint, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Checkpoint
	if err := dec.Decode(&c); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrMalformedCheckpoint, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Checkpoint{}, fmt.Errorf("%w: data after the checkpoint", ErrMalformedCheckpoint)
	}
	if c.Hash == nil || c.Signature == nil || c.KeyID == "" || c.Time.IsZero() {
		return Checkpoint{}, fmt.Errorf("%w: a field is missing (seq, hash, time, keyId and signature are required)", ErrMalformedCheckpoint)
	}
	return c, nil
}
