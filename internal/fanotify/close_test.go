package fanotify

import (
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/kerneltest"
)

// TestCloseWhileReading closes listeners while readers start and wait on
// them; run with -race (a WaitGroup's Add racing its Wait at zero was
// reported here) and every reader must return ErrClosed.
func TestCloseWhileReading(t *testing.T) {
	if os.Geteuid() != 0 {
		kerneltest.Skip(t, "fanotify needs root")
	}
	for range 50 {
		l, err := New()
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := l.Read(make([]byte, 4096), nil)
				errs <- err
			}()
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("Read after Close: %v, want ErrClosed", err)
			}
		}
	}
}
