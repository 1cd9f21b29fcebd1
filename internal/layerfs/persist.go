package layerfs

import (
	"archive/tar"
	"bufio"
	"bytes"
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

// maxIndexBytes bounds the encoded entries Decode reads back (a layer of
// a million files takes about 100 MB): a small compressed file cannot make
// the decoder take gob's own limit of 2 GiB.
const maxIndexBytes = 512 << 20

// Decode reads what Encode wrote. It trusts nothing: every offset must lie
// inside the content, every name must be clean, and sizes are bounded
// (opts.MaxLayerSize bounds the layer and its kept content, before any of
// it is copied; maxIndexBytes the entries; maxNotes the notes). A crafted
// or damaged file is an error, never a panic (FuzzDecode).
func Decode(r io.Reader, diffID string, opts StreamOptions) (*Indexed, error) {
	br := bufio.NewReader(r)
	var hdr [16]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, fmt.Errorf("reading stored layer index: %w", err)
	}
	if v := binary.BigEndian.Uint64(hdr[:8]); v != PersistVersion {
		return nil, fmt.Errorf("stored layer index has version %d, want %d", v, PersistVersion)
	}
	count := binary.BigEndian.Uint64(hdr[8:])
	if count > uint64(maxEntries) {
		return nil, fmt.Errorf("stored layer index names %d entries: damaged", count)
	}
	var recs []record
	if err := gob.NewDecoder(&limitedByteReader{br: br, n: maxIndexBytes}).Decode(&recs); err != nil {
		return nil, fmt.Errorf("decoding stored layer index: %w", err)
	}
	if uint64(len(recs)) != count {
		return nil, errors.New("stored layer index is damaged: entry count differs")
	}
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, fmt.Errorf("reading stored layer index: %w", err)
	}
	size, layerSize := binary.BigEndian.Uint64(hdr[:8]), binary.BigEndian.Uint64(hdr[8:])
	max := uint64(1<<63 - 1)
	if opts.MaxLayerSize > 0 {
		max = uint64(opts.MaxLayerSize)
	}
	if size > max || layerSize > max || layerSize != 0 && size > layerSize {
		return nil, fmt.Errorf("stored layer keeps %d bytes of a layer of %d: damaged or over the limit of %d", size, layerSize, max)
	}
	sp := NewSpool(opts.TempDir, opts.MemLimit)
	ix := &Indexed{DiffID: diffID, Size: int64(layerSize), content: sp, data: sp, closer: sp, entries: make([]entry, len(recs))}
	if n, err := io.Copy(sp, io.LimitReader(br, int64(size))); err != nil || n != int64(size) {
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
		// Off and Size are checked without a sum that could overflow.
		if err != nil || skip || clean != rc.Name || !storedType(rc.Typ) || rc.Size < 0 || rc.Off >= 0 && rc.Off > int64(size)-rc.Size {
			sp.Close()
			return nil, fmt.Errorf("stored layer index is damaged at entry %q", rc.Name)
		}
		ix.entries[i] = entry{name: rc.Name, linkname: rc.Linkname, digest: rc.Digest, typ: rc.Typ, mode: entryMode(rc.Typ, rc.Mode), size: rc.Size, off: rc.Off, sparse: rc.Sparse}
	}
	return ix, nil
}

// storedType reports whether typ is one a streaming pass keeps
// (headerEntry).
func storedType(typ byte) bool {
	switch typ {
	case tar.TypeReg, tar.TypeChar, tar.TypeBlock, tar.TypeFifo, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
		return true
	}
	return false
}

// limitedByteReader is an io.LimitedReader that is also an io.ByteReader,
// so that gob reads from it without a buffer of its own (which would take
// bytes past the index).
type limitedByteReader struct {
	br *bufio.Reader
	n  int64
}

var errIndexTooLarge = fmt.Errorf("stored layer index is larger than %d bytes", maxIndexBytes)

func (l *limitedByteReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errIndexTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.br.Read(p)
	l.n -= int64(n)
	return n, err
}

func (l *limitedByteReader) ReadByte() (byte, error) {
	if l.n <= 0 {
		return 0, errIndexTooLarge
	}
	l.n--
	return l.br.ReadByte()
}

// readNotes reads the notes; their buffer grows with what is read, so a
// file that only claims a large size costs nothing.
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
	var notes bytes.Buffer
	if _, err := io.CopyN(&notes, r, int64(n-1)); err != nil {
		return nil, fmt.Errorf("reading stored layer notes: %w", err)
	}
	return notes.Bytes(), nil
}
