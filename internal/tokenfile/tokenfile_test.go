package tokenfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
