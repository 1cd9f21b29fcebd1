package layerfs

import (
	"bufio"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// PersistVersion changes whenever the encoding of an Indexed layer does;
// a results cache names its entries with it, so that older entries are
// never opened (and age out).
const PersistVersion = 2

// maxNotes bounds the notes Decode reads back.
const maxNotes = 256 << 20

// record is an entry as it is stored.
type record struct {
	Name, Linkname, Digest string
	Typ                    byte
	Mode                   fs.FileMode
	Size, Off              int64
	Sparse                 bool
}

// Encode writes a streamed layer's index and kept content to w: a version,
// the gob of its entries, the length of the content and the content, then
// the length of the notes plus one (zero: no notes) and the notes. Only
// layers from IndexStream can be encoded.
func (ix *Indexed) Encode(w io.Writer) error {
	if ix.content == nil {
		return errors.New("only a streamed layer can be stored")
	}
	recs := make([]record, len(ix.entries))
	for i, e := range ix.entries {
		recs[i] = record{Name: e.name, Linkname: e.linkname, Digest: e.digest, Typ: e.typ, Mode: e.mode, Size: e.size, Off: e.off, Sparse: e.sparse}
	}
	bw := bufio.NewWriter(w)
	var hdr [16]byte
	binary.BigEndian.PutUint64(hdr[:8], PersistVersion)
	binary.BigEndian.PutUint64(hdr[8:], uint64(len(recs)))
	bw.Write(hdr[:])
	if err := gob.NewEncoder(bw).Encode(recs); err != nil {
		return fmt.Errorf("encoding layer index: %w", err)
	}
	binary.BigEndian.PutUint64(hdr[:8], uint64(ix.content.Size()))
	binary.BigEndian.PutUint64(hdr[8:], uint64(ix.Size))
	bw.Write(hdr[:])
	if _, err := io.Copy(bw, io.NewSectionReader(ix.content, 0, ix.content.Size())); err != nil {
		return fmt.Errorf("writing kept content: %w", err)
	}
	notes := uint64(0)
	if ix.Notes != nil {
		notes = uint64(len(ix.Notes)) + 1
	}
	binary.BigEndian.PutUint64(hdr[:8], notes)
	bw.Write(hdr[:8])
	bw.Write(ix.Notes)
	return bw.Flush()
}

// Decode reads what Encode wrote. It trusts nothing: every offset must lie
// inside the content, every name must be clean, and sizes are bounded.
func Decode(r io.Reader, diffID string, opts StreamOptions) (*Indexed, error) {
	br := bufio.NewReader(r)
	var hdr [16]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, fmt.Errorf("reading stored layer index: %w", err)
	}
	if v := binary.BigEndian.Uint64(hdr[:8]); v != PersistVersion {
		return nil, fmt.Errorf("stored layer index has version %d, want %d", v, PersistVersion)
	}
	var recs []record
	if err := gob.NewDecoder(br).Decode(&recs); err != nil {
		return nil, fmt.Errorf("decoding stored layer index: %w", err)
	}
	if uint64(len(recs)) != binary.BigEndian.Uint64(hdr[8:]) {
		return nil, errors.New("stored layer index is damaged: entry count differs")
	}
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, fmt.Errorf("reading stored layer index: %w", err)
	}
	size := int64(binary.BigEndian.Uint64(hdr[:8]))
	sp := NewSpool(opts.TempDir, opts.MemLimit)
	ix := &Indexed{DiffID: diffID, Size: int64(binary.BigEndian.Uint64(hdr[8:])), content: sp, data: sp, closer: sp, entries: make([]entry, len(recs))}
	if n, err := io.Copy(sp, io.LimitReader(br, size)); err != nil || n != size || size < 0 {
		sp.Close()
		return nil, fmt.Errorf("reading stored layer content (%d of %d bytes): %v", n, size, err)
	}
	notes, err := readNotes(br)
	if err != nil {
		sp.Close()
		return nil, err
	}
	ix.Notes = notes
	for i, rc := range recs {
		clean, skip, err := cleanEntryName(rc.Name[min(1, len(rc.Name)):])
		if err != nil || skip || clean != rc.Name || rc.Off >= 0 && (rc.Size < 0 || rc.Off+rc.Size > size) {
			sp.Close()
			return nil, fmt.Errorf("stored layer index is damaged at entry %q", rc.Name)
		}
		ix.entries[i] = entry{name: rc.Name, linkname: rc.Linkname, digest: rc.Digest, typ: rc.Typ, mode: rc.Mode, size: rc.Size, off: rc.Off, sparse: rc.Sparse}
	}
	return ix, nil
}

func readNotes(r io.Reader) ([]byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("reading stored layer notes: %w", err)
	}
	n := binary.BigEndian.Uint64(hdr[:])
	if n == 0 {
		return nil, nil
	}
	if n-1 > maxNotes {
		return nil, fmt.Errorf("stored layer notes are %d bytes, more than %d", n-1, maxNotes)
	}
	notes := make([]byte, n-1)
	if _, err := io.ReadFull(r, notes); err != nil {
		return nil, fmt.Errorf("reading stored layer notes: %w", err)
	}
	return notes, nil
}
