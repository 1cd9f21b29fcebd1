package image

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// meter prints download progress to w at most five times a second: layers
// done of all, bytes read of all; a nil writer makes every method a no-op.
type meter struct {
	w                  io.Writer
	label              string
	total, read        atomic.Int64
	layers, layersDone atomic.Int64
	stop               chan struct{}
	once               sync.Once
	wg                 sync.WaitGroup
}

func newMeter(w io.Writer, label string) *meter {
	m := &meter{w: w, label: label, stop: make(chan struct{})}
	if w == nil {
		return m
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				if m.started() {
					m.print("\r")
				}
			}
		}
	}()
	return m
}

func (m *meter) started() bool { return m.total.Load() > 0 || m.layersDone.Load() > 0 }

func (m *meter) print(prefix string) {
	layers := ""
	if n := m.layers.Load(); n > 0 {
		layers = fmt.Sprintf("%d/%d layers, ", m.layersDone.Load(), n)
	}
	fmt.Fprintf(m.w, "%s%s: %s%.1f / %.1f MB", prefix, m.label, layers, float64(m.read.Load())/1e6, float64(m.total.Load())/1e6)
}

// setLayers says how many layers the image has; layerDone counts one read
// (downloaded, or found in the results cache).
func (m *meter) setLayers(n int) { m.layers.Store(int64(n)) }
func (m *meter) layerDone()      { m.layersDone.Add(1) }

func (m *meter) addTotal(n int64) { m.total.Add(n) }

func (m *meter) wrap(rc io.ReadCloser) io.ReadCloser {
	if m.w == nil {
		return rc
	}
	return &countingReader{ReadCloser: rc, n: &m.read}
}

func (m *meter) finish() {
	if m.w == nil {
		return
	}
	m.once.Do(func() {
		close(m.stop)
		m.wg.Wait()
		if m.started() {
			m.print("\r")
			fmt.Fprintln(m.w)
		}
	})
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}
