package image

import (
	"errors"
	"hash"
	"io"
	"sync"
)

// Chunks of a layerPipe: chunkCount buffers of chunkSize bytes in flight
// per layer.
const (
	chunkSize  = 256 << 10
	chunkCount = 3
)

// layerPipe decompresses a layer in its own goroutine and hands the
// uncompressed bytes over in chunks, so that one layer's inflate and its
// SHA-256 and tar parsing run side by side on two cores: a second image
// that adds one layer to a cached base waits for one layer, not for the sum
// of its stages. Every chunk is hashed as it is taken, so the digest covers
// every byte whether the tar reader reads it or skips it. Skipping (Seek,
// which archive/tar uses to pass over file data nobody reads) moves past
// bytes without copying them.
type layerPipe struct {
	h    hash.Hash
	full chan []byte
	free chan []byte
	stop chan struct{}
	done chan struct{}
	err  error // set by the producer before it closes full

	buf, cur []byte // the chunk being read, and its unread part
	pos      int64
}

func newLayerPipe(src io.Reader, h hash.Hash) *layerPipe {
	p := &layerPipe{
		h:    h,
		full: make(chan []byte, chunkCount),
		free: make(chan []byte, chunkCount),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range chunkCount {
		p.free <- chunkPool.Get().(*[chunkSize]byte)[:]
	}
	go p.produce(src)
	return p
}

func (p *layerPipe) produce(src io.Reader) {
	defer close(p.done)
	defer close(p.full)
	for {
		var b []byte
		select {
		case b = <-p.free:
		case <-p.stop:
			return
		}
		n, err := fill(src, b[:cap(b)])
		if n > 0 {
			select {
			case p.full <- b[:n]:
			case <-p.stop:
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				p.err = err
			}
			return
		}
	}
}

// fill reads into b until it is full or src fails; io.EOF means the end.
func fill(src io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := src.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// next takes the following chunk, hashing it; false at the end.
func (p *layerPipe) next() bool {
	if p.buf != nil {
		p.free <- p.buf
		p.buf = nil
	}
	b, ok := <-p.full
	if !ok {
		return false
	}
	p.h.Write(b)
	p.buf, p.cur = b, b
	return true
}

func (p *layerPipe) end() error {
	if p.err != nil {
		return p.err
	}
	return io.EOF
}

func (p *layerPipe) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if !p.next() {
			return 0, p.end()
		}
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	p.pos += int64(n)
	return n, nil
}

// Seek moves forward from the current position only; past the end it stops
// there, and the tar reader's next read reports the truncation.
func (p *layerPipe) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekCurrent || off < 0 {
		return p.pos, errors.New("layer stream seeks forward only")
	}
	for off > 0 {
		if len(p.cur) == 0 && !p.next() {
			break
		}
		k := min(off, int64(len(p.cur)))
		p.cur = p.cur[k:]
		off -= k
		p.pos += k
	}
	return p.pos, nil
}

// drain reads to the end (the tar's padding, so that the digest covers
// it) and reports the decompression's error, if any.
func (p *layerPipe) drain() error {
	p.cur = nil
	for p.next() {
		p.pos += int64(len(p.cur))
		p.cur = nil
	}
	return p.err
}

// chunkPool keeps chunks from one layer to the next: the heap stays at
// what the layers in flight use instead of growing by their garbage.
var chunkPool = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// Close stops the producer. closeSource unblocks a producer waiting on its
// source (a network read) before Close waits for it to return.
func (p *layerPipe) Close(closeSource func() error) {
	close(p.stop)
	closeSource()
	<-p.done
	if p.buf != nil {
		p.free <- p.buf
		p.buf = nil
	}
	for len(p.free) > 0 {
		chunkPool.Put((*[chunkSize]byte)((<-p.free)[:chunkSize]))
	}
}
