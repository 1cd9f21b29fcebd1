package tokenfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A file that is missing, empty or too large while it is being replaced
// keeps the last token (and says why); a file that never held a token is
// an error at Open; a refusal re-reads at once, once.
func TestSourceKeepsLastGoodToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if _, err := Open(path, 0); err == nil {
		t.Error("Open of a missing file: no error")
	}
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("  \n")
	if _, err := Open(path, 0); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("Open of an empty file: %v", err)
	}
	write("one\n")
	now := time.Unix(1000, 0)
	s, err := Open(path, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return now }
	write("two")
	if got := s.Token(); got != "one" {
		t.Errorf("within the period: %q, want the token read at Open", got)
	}
	s.Refused("stale") // not the token it holds: no re-read
	if got := s.Token(); got != "one" {
		t.Errorf("after a refusal of another token: %q", got)
	}
	s.Refused("one")
	if got := s.Token(); got != "two" {
		t.Errorf("after a refusal: %q, want the file read again", got)
	}
	for _, bad := range []string{"", strings.Repeat("x", maxBytes+1)} {
		write(bad)
		now = now.Add(time.Minute)
		if got := s.Token(); got != "two" || s.Err() == nil {
			t.Errorf("a bad file (%d bytes): %q, %v; want the last token and an error", len(bad), got, s.Err())
		}
	}
	os.Remove(path)
	now = now.Add(time.Minute)
	if got := s.Token(); got != "two" || s.Err() == nil {
		t.Errorf("a missing file: %q, %v", got, s.Err())
	}
	if got := Static(" env\n").Token(); got != "env" {
		t.Errorf("Static: %q", got)
	}
	var none *Source
	if none.Token() != "" || none.Err() != nil {
		t.Error("a nil Source is not empty")
	}
	none.Refused("x")
}

// The kubelet's rotation: the token is ..data/token, ..data a symlink to
// a timestamped directory, swapped atomically (rename of a new symlink).
// The next read follows the swap.
func TestSourceFollowsDataSwap(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []struct{ name, tok string }{{"..2026_12_03_1", "one"}, {"..2026_12_03_2", "two"}} {
		if err := os.Mkdir(filepath.Join(dir, d.name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, d.name, "token"), []byte(d.tok), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("..2026_12_03_1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/token", filepath.Join(dir, "token")); err != nil {
		t.Fatal(err)
	}
	s, err := Open(filepath.Join(dir, "token"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Token(); got != "one" {
		t.Fatalf("before the swap: %q", got)
	}
	if err := os.Symlink("..2026_12_03_2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	s.Refused("one")
	if got := s.Token(); got != "two" {
		t.Errorf("after the swap: %q, want two", got)
	}
}

// A token file replaced by what is not a regular file (a FIFO no one
// writes, a device that never ends) is an error at once and the last token
// is kept: before, a FIFO blocked the read, and with it every request of
// the agent (the Source's lock), for as long as no writer came.
func TestSourceRefusesNonRegularFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s, err := Open(path, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return now }
	os.Remove(path)
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	got := make(chan string, 1)
	go func() { got <- s.Token() }()
	select {
	case tok := <-got:
		if tok != "one" || s.Err() == nil || !strings.Contains(s.Err().Error(), "not a regular file") {
			t.Errorf("a FIFO: %q, %v; want the last token and an error", tok, s.Err())
		}
	case <-time.After(2 * time.Second):
		f, _ := os.OpenFile(path, os.O_WRONLY, 0) // a writer: the blocked read returns
		f.Close()
		t.Fatal("Token blocked on a FIFO")
	}
	if _, err := Open("/dev/zero", 0); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open of a device: %v", err)
	}
}
