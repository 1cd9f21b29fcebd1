package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func open(t *testing.T, dir string, max int64) *Spool {
	t.Helper()
	s, err := Open(dir, max)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func appendN(t *testing.T, s *Spool, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := s.Append(fmt.Appendf(nil, "event %d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

func seqs(t *testing.T, s *Spool, n int) []uint64 {
	t.Helper()
	recs, err := s.Peek(n, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, r := range recs {
		if want := fmt.Sprintf("event %d", r.Seq); string(r.Data) != want {
			t.Fatalf("record %d holds %q, want %q", r.Seq, r.Data, want)
		}
		out = append(out, r.Seq)
	}
	return out
}

// TestRestartKeepsUnsent: records appended and not acknowledged come back
// after the spool is closed and opened again (an agent restart), in order,
// with the same id, and the sequence goes on where it stopped.
func TestRestartKeepsUnsent(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20)
	appendN(t, s, 1, 10)
	got := seqs(t, s, 4)
	if len(got) != 4 || got[0] != 1 || got[3] != 4 {
		t.Fatalf("first peek: %v", got)
	}
	if err := s.Ack(4); err != nil {
		t.Fatal(err)
	}
	id := s.Stats().ID
	s.Close()

	s = open(t, dir, 1<<20)
	st := s.Stats()
	if st.ID != id || st.Pending != 6 || st.Next != 11 {
		t.Fatalf("after restart: %+v, want id %s, 6 pending, next 11", st, id)
	}
	got = seqs(t, s, 100)
	if len(got) != 6 || got[0] != 5 || got[5] != 10 {
		t.Fatalf("after restart: %v, want 5..10", got)
	}
	appendN(t, s, 11, 1)
	if err := s.Ack(11); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Pending != 0 || st.Bytes != 0 {
		t.Fatalf("all acknowledged: %+v", st)
	}
	if got := seqs(t, s, 100); len(got) != 0 {
		t.Fatalf("all acknowledged, still read: %v", got)
	}
}

// TestPeekRepeatsUntilAck: an unacknowledged batch is read again (a send
// that failed is resent), across segments.
func TestPeekRepeatsUntilAck(t *testing.T) {
	s := open(t, t.TempDir(), MinBytes)
	appendN(t, s, 1, 2000) // ~24 bytes each: several 8 KiB segments... and a bound
	st := s.Stats()
	first := seqs(t, s, 50)
	again := seqs(t, s, 50)
	if fmt.Sprint(first) != fmt.Sprint(again) {
		t.Fatalf("peek without ack moved: %v then %v", first, again)
	}
	var n uint64
	for {
		got := seqs(t, s, 300)
		if len(got) == 0 {
			break
		}
		for i, q := range got {
			if i > 0 && q != got[i-1]+1 {
				t.Fatalf("gap in a batch: %v", got)
			}
		}
		n += uint64(len(got))
		if err := s.Ack(got[len(got)-1]); err != nil {
			t.Fatal(err)
		}
	}
	if n+st.Dropped != 2000 {
		t.Fatalf("read %d + dropped %d, want 2000", n, st.Dropped)
	}
}

// TestBoundDropsOldest: past its bound the spool drops its oldest records,
// counts them, keeps the newest, and stays within the bound; the count
// survives a restart.
func TestBoundDropsOldest(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, MinBytes)
	const total = 20000 // ~30 bytes each on disk: ~600 KB into 64 KiB
	appendN(t, s, 1, total)
	st := s.Stats()
	if st.Bytes > MinBytes {
		t.Fatalf("spool holds %d bytes, bound %d", st.Bytes, MinBytes)
	}
	if st.Dropped == 0 || st.Dropped+st.Pending != total {
		t.Fatalf("dropped %d + pending %d, want %d with some dropped", st.Dropped, st.Pending, total)
	}
	got := seqs(t, s, total)
	if uint64(len(got)) != st.Pending || got[0] != st.Dropped+1 || got[len(got)-1] != total {
		t.Fatalf("kept %d records %d..%d, want the newest %d ending at %d", len(got), got[0], got[len(got)-1], st.Pending, total)
	}
	s.Close()
	s = open(t, dir, MinBytes)
	if st2 := s.Stats(); st2.Dropped != st.Dropped || st2.Pending != st.Pending {
		t.Fatalf("after restart %+v, before %+v", st2, st)
	}
}

// TestTornTail: a record half written when the agent died is cut off;
// the ones before it are kept and the next append follows them.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20)
	appendN(t, s, 1, 3)
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	if len(segs) != 1 {
		t.Fatalf("segments: %v", segs)
	}
	f, err := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(appendFrame(nil, 4, []byte("event 4"))[:10])
	f.Close()
	s = open(t, dir, 1<<20)
	appendN(t, s, 4, 1)
	if got := seqs(t, s, 10); fmt.Sprint(got) != "[1 2 3 4]" {
		t.Fatalf("after a torn tail: %v", got)
	}
}

// TestBadInput: a damaged state file is an error, not a panic; a record
// too large is refused; an ack past what was written is refused.
func TestBadInput(t *testing.T) {
	if _, err := Open(t.TempDir(), 10); err == nil {
		t.Fatal("a bound under MinBytes was taken")
	}
	dir := t.TempDir()
	s := open(t, dir, 1<<20)
	if _, err := s.Append(make([]byte, MaxRecord+1)); err == nil {
		t.Fatal("an oversized record was taken")
	}
	if err := s.Ack(5); err == nil {
		t.Fatal("an ack of an unwritten seq was taken")
	}
	s.Close()
	os.WriteFile(filepath.Join(dir, "state.json"), []byte(`{"id":`), 0o600)
	if _, err := Open(dir, 1<<20); err == nil {
		t.Fatal("a damaged state file was taken")
	}
}
