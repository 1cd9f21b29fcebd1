package layerfs

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

// TestSpoolMatchesBuffer: a spool written in pieces of every size across
// segment boundaries, truncated (as a probed ELF that is not kept is) and
// written again, reads back exactly what a plain buffer holds, in memory
// and once spilled to its file.
func TestSpoolMatchesBuffer(t *testing.T) {
	for _, memMax := range []int64{1 << 30, 300 << 10} { // stays in memory; spills midway
		rng := rand.New(rand.NewPCG(1, uint64(memMax)))
		sp := NewSpool(t.TempDir(), memMax)
		var want []byte
		for round := range 40 {
			p := make([]byte, rng.IntN(3*spoolSegment))
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			if _, err := sp.Write(p); err != nil {
				t.Fatal(err)
			}
			want = append(want, p...)
			if round%3 == 2 {
				n := rng.Int64N(int64(len(want)) + 1)
				if err := sp.Truncate(n); err != nil {
					t.Fatal(err)
				}
				want = want[:n]
			}
			if sp.Size() != int64(len(want)) {
				t.Fatalf("size %d, want %d", sp.Size(), len(want))
			}
			got, err := io.ReadAll(io.NewSectionReader(sp, 0, sp.Size()))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("memMax %d round %d: content differs (%v)", memMax, round, err)
			}
			if len(want) > 0 {
				off := rng.Int64N(int64(len(want)))
				b := make([]byte, 2*spoolSegment)
				k, err := sp.ReadAt(b, off)
				if !bytes.Equal(b[:k], want[off:min(int64(len(want)), off+int64(len(b)))]) || k < len(b) && err != io.EOF {
					t.Fatalf("ReadAt(%d) = %d, %v: wrong bytes or no EOF", off, k, err)
				}
			}
		}
		if memMax < 1<<30 && sp.f == nil {
			t.Error("the spool never spilled to its file")
		}
		sp.Close()
	}
}
