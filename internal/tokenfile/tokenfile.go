// Package tokenfile is the bearer token an agent sends to the server, read
// from a file that may change under it: the kubelet rotates a projected
// service account token (at 80% of its life, by swapping the volume's
// ..data symlink), so the file is read again at most every few seconds,
// and at once when the server refused the token it holds. A token in the
// environment is a Source that never changes.
package tokenfile

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultEvery is how often a Source re-reads its file.
const DefaultEvery = 5 * time.Second

// maxBytes bounds the file read (a projected token is about 1 KB).
const maxBytes = 64 << 10

// Source hands out the current token. The zero of a nil *Source is "".
type Source struct {
	path  string
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	token   string
	read    time.Time // of the last attempt
	refused bool      // the server answered 401 to token
	lastErr error     // of the last read; the previous token is kept
}

// Static is a Source of one token that never changes.
func Static(token string) *Source { return &Source{token: strings.TrimSpace(token)} }

// Open reads path now (it must hold a token) and returns a Source that
// re-reads it at most every every (0: DefaultEvery).
func Open(path string, every time.Duration) (*Source, error) {
	if every <= 0 {
		every = DefaultEvery
	}
	s := &Source{path: path, every: every, now: time.Now}
	tok, err := readToken(path)
	if err != nil {
		return nil, err
	}
	s.token, s.read = tok, s.now()
	return s, nil
}

// Token is the current token: the file's content when it was read less
// than every ago, else read again. A failed read or an empty file keeps
// the last token (a rotation in progress; Err says why).
func (s *Source) Token() string {
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.path == "" {
		return s.token
	}
	now := s.now()
	if s.refused || now.Sub(s.read) >= s.every {
		s.read, s.refused = now, false
		tok, err := readToken(s.path)
		s.lastErr = err
		if err == nil {
			s.token = tok
		}
	}
	return s.token
}

// Refused notes that the server answered 401 to token: the next Token
// reads the file again at once, once (a token the kubelet has just
// rotated is taken without waiting for the period).
func (s *Source) Refused(token string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if token == s.token {
		s.refused = true
	}
}

// Err is the error of the last read, nil when it succeeded.
func (s *Source) Err() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// readToken reads the token in path, a regular file (symlinks followed:
// the kubelet's ..data). Opened without blocking and checked before the
// read: a FIFO no one writes would block the read, and with it every
// request of the agent, until a writer came; a device need never end.
func readToken(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", fmt.Errorf("reading the token file %q: %w", path, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return "", fmt.Errorf("reading the token file %q: %w", path, err)
	} else if !st.Mode().IsRegular() {
		return "", fmt.Errorf("reading the token file %q: not a regular file (%s)", path, st.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading the token file %q: %w", path, err)
	}
	if len(b) > maxBytes {
		return "", fmt.Errorf("reading the token file %q: more than %d bytes", path, maxBytes)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("reading the token file %q: it is empty", path)
	}
	return tok, nil
}
