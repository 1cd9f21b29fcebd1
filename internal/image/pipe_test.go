package image

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// TestLayerPipeHashesSkippedBytes: bytes passed over with Seek are hashed
// like those read, the positions add up, and drain reaches the end.
func TestLayerPipeHashesSkippedBytes(t *testing.T) {
	data := make([]byte, 3*chunkSize+12345)
	rand.NewChaCha8([32]byte{7}).Read(data)
	h := sha256.New()
	p := newLayerPipe(bytes.NewReader(data), h)
	defer p.Close(func() error { return nil })
	head := make([]byte, 100)
	if _, err := io.ReadFull(p, head); err != nil || !bytes.Equal(head, data[:100]) {
		t.Fatalf("read %v", err)
	}
	if pos, err := p.Seek(2*chunkSize, io.SeekCurrent); err != nil || pos != 100+2*chunkSize {
		t.Fatalf("seek to %d, %v", pos, err)
	}
	if _, err := io.ReadFull(p, head); err != nil || !bytes.Equal(head, data[200+2*chunkSize-100:200+2*chunkSize]) {
		t.Fatalf("read after seek: %v", err)
	}
	if pos, _ := p.Seek(1<<40, io.SeekCurrent); pos != int64(len(data)) {
		t.Errorf("seek past the end stopped at %d, want %d", pos, len(data))
	}
	if err := p.drain(); err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Error("the digest does not cover every byte")
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(b []byte) (int, error) {
	if f.n <= 0 {
		return 0, errBroken
	}
	k := min(len(b), f.n)
	f.n -= k
	return k, nil
}

var errBroken = errors.New("broken stream")

// TestLayerPipeReportsSourceError: a source that fails mid-way fails the
// reader after the bytes it gave, not as a clean end.
func TestLayerPipeReportsSourceError(t *testing.T) {
	p := newLayerPipe(&failingReader{n: chunkSize + 10}, sha256.New())
	defer p.Close(func() error { return nil })
	n, err := io.Copy(io.Discard, p)
	if n != chunkSize+10 || !errors.Is(err, errBroken) {
		t.Errorf("copied %d, err %v; want %d and the source's error", n, err, chunkSize+10)
	}
}

// blockingReader blocks until closed, like a stalled network read.
type blockingReader struct{ closed chan struct{} }

func (b *blockingReader) Read([]byte) (int, error) { <-b.closed; return 0, io.ErrClosedPipe }
func (b *blockingReader) Close() error             { close(b.closed); return nil }

// TestLayerPipeCloseUnblocksSource: closing a pipe whose producer waits on
// a stalled source closes the source first, so Close returns.
func TestLayerPipeCloseUnblocksSource(t *testing.T) {
	src := &blockingReader{closed: make(chan struct{})}
	p := newLayerPipe(src, sha256.New())
	done := make(chan struct{})
	go func() { p.Close(src.Close); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs on a stalled source")
	}
}
