package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/report"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// AdvisoryStatus is the server's advisory database as decisions and
// findings name it.
type AdvisoryStatus struct {
	Data policy.AdvisoryData
	// Version changes whenever the data may have: findings are memoized
	// per digest and version.
	Version string
	// Unusable says why the data cannot back a decision ("" when it
	// can): empty, or older than the server's maximum age.
	Unusable string
}

// UseAdvisorySource gives the API the advisory database that
// GET /api/v1/images/{digest}/findings matches stored inventories
// against, and its status.
func (h *Handler) UseAdvisorySource(src match.Source, status func(context.Context) (AdvisoryStatus, error)) {
	h.advisorySource, h.advisoryStatus = src, status
}

// FindingsPage is GET /api/v1/images/{digest}/findings: the
// `bulwark scan --format json` report, one page of its findings, and the
// advisory database they were matched against.
type FindingsPage struct {
	*report.Scan
	// Database is the advisory database the findings came from (it
	// replaces the report's path-only description).
	Database policy.AdvisoryData `json:"database"`
	// Unknown, when set, is why these findings cannot be trusted: no
	// advisory data, or data too old. Decisions fail as unknown then.
	Unknown string `json:"unknown,omitempty"`
	Total   int    `json:"total"` // findings in all pages
	Next    string `json:"next,omitempty"`
}

// findingPos is the findings cursor: the last finding served, in the
// report's order (severity, package, version, location, id), so a page
// follows on whatever the advisory data did meanwhile.
type findingPos struct {
	Severity match.Severity `json:"s"`
	Package  string         `json:"p"`
	Version  string         `json:"v"`
	Location string         `json:"l"`
	ID       string         `json:"i"`
}

func posOf(f match.Finding) findingPos {
	return findingPos{f.Severity, f.Package.Name, f.Package.Version, f.Package.Location, f.ID}
}

func comparePos(a, b findingPos) int {
	return cmp.Or(cmp.Compare(b.Severity, a.Severity), cmp.Compare(a.Package, b.Package),
		cmp.Compare(a.Version, b.Version), cmp.Compare(a.Location, b.Location), cmp.Compare(a.ID, b.ID))
}

// findings serves one page of the stored inventory's findings against
// the current advisory database. The match is memoized per digest and
// advisory-database version (findingsMemo): a flood of requests for one
// image matches it once, not once per request.
func (h *Handler) findings(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if h.advisorySource == nil || h.advisoryStatus == nil {
		return errorf(http.StatusServiceUnavailable, nil, "this server has no advisory database")
	}
	var after findingPos
	limit, paged, err := pageParams(r, &after)
	if err != nil {
		return err
	}
	digest := r.PathValue("digest")
	st, err := h.advisoryStatus(ctx)
	if err != nil {
		return err
	}
	rep, err := h.memo.get(ctx, digest, st.Version, func(ctx context.Context) (*report.Scan, error) {
		release, err := h.acquireMatch(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
		inv, err := h.store.Inventory(ctx, digest)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errorf(http.StatusNotFound, err, "no inventory stored for %s", digest)
		}
		if err != nil {
			return nil, err
		}
		res, err := match.Match(ctx, h.advisorySource, inv)
		if err != nil {
			return nil, err
		}
		res.Sort()
		return report.New(inv, res, report.Database{}), nil
	})
	if err != nil {
		return err
	}
	start := 0
	if paged {
		start, _ = slices.BinarySearchFunc(rep.Findings, after, func(f match.Finding, p findingPos) int {
			if comparePos(posOf(f), p) <= 0 {
				return -1
			}
			return 1
		})
	}
	key := pageKey{version: st.Version, unknown: st.Unusable, start: start, limit: limit}
	body, ok := h.memo.page(digest, key)
	if !ok {
		end := min(start+limit, len(rep.Findings))
		page := *rep
		page.Findings = rep.Findings[start:end]
		out := FindingsPage{Scan: &page, Database: st.Data, Unknown: st.Unusable, Total: len(rep.Findings)}
		if end < len(rep.Findings) {
			out.Next = cursor(posOf(rep.Findings[end-1]))
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return fmt.Errorf("encoding the findings of %s: %w", digest, err)
		}
		body = b.Bytes()
		h.memo.putPage(digest, key, body)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
	return nil
}

// pageKey is one encoded page of a digest's findings.
type pageKey struct {
	version, unknown string
	start, limit     int
}

// maxPageBytes bounds the encoded pages the memo keeps, all digests
// together: a flood asks for the same pages over and over.
const maxPageBytes = 64 << 20

// page returns the encoded page of digest at key, if kept.
func (m *findingsMemo) page(digest string, key pageKey) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[digest]
	if e == nil || e.version != key.version {
		return nil, false
	}
	b, ok := e.pages[key]
	return b, ok
}

// putPage keeps an encoded page while the memo holds digest's entry of
// the same version and the page budget allows.
func (m *findingsMemo) putPage(digest string, key pageKey, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[digest]
	if e == nil || e.version != key.version || e.rep == nil || m.pageBytes+len(b) > maxPageBytes {
		return
	}
	if e.pages == nil {
		e.pages = map[pageKey][]byte{}
	}
	if _, ok := e.pages[key]; !ok {
		e.pages[key] = b
		e.pageBytes += len(b)
		m.pageBytes += len(b)
	}
}

// maxMemoFindings bounds the findings the memo holds, all images
// together (a finding is about 0.5 KiB in memory).
const maxMemoFindings = 200_000

// memoTimeout bounds one match; the requests waiting on it are bounded
// by their own timeout.
const memoTimeout = 2 * time.Minute

// findingsMemo holds the latest report of recently asked digests, for
// one advisory-database version each, and computes each (digest, version)
// once however many requests ask at the same time. Oldest first out past
// maxMemoFindings.
type findingsMemo struct {
	mu      sync.Mutex
	entries map[string]*memoEntry
	order   []string // digests, oldest first
	held    int      // findings in completed entries
	// pageBytes are the encoded pages kept, all entries together.
	pageBytes int
	onFill    func() // tests: called for every computation
}

type memoEntry struct {
	version string
	done    chan struct{}
	rep     *report.Scan
	err     error
	size    int // findings counted in held; set under mu

	pages     map[pageKey][]byte // encoded pages, under mu
	pageBytes int
}

// get returns digest's report for version, computing it with compute
// (detached from the first caller's cancellation, so the callers waiting
// with it are not failed by that one leaving).
func (m *findingsMemo) get(ctx context.Context, digest, version string, compute func(context.Context) (*report.Scan, error)) (*report.Scan, error) {
	m.mu.Lock()
	if m.entries == nil {
		m.entries = map[string]*memoEntry{}
	}
	e, ok := m.entries[digest]
	if !ok || e.version != version {
		if ok {
			m.dropLocked(digest)
		}
		e = &memoEntry{version: version, done: make(chan struct{})}
		m.entries[digest] = e
		m.order = append(m.order, digest)
		go m.fill(digest, e, compute)
	}
	m.mu.Unlock()
	select {
	case <-e.done:
		return e.rep, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (m *findingsMemo) fill(digest string, e *memoEntry, compute func(context.Context) (*report.Scan, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), memoTimeout)
	defer cancel()
	if m.onFill != nil {
		m.onFill()
	}
	rep, err := compute(ctx)
	m.mu.Lock()
	e.rep, e.err = rep, err
	close(e.done)
	defer m.mu.Unlock()
	if m.entries[digest] != e {
		return // replaced meanwhile
	}
	if e.err != nil {
		m.dropLocked(digest) // not memoized: asked again, computed again
		return
	}
	e.size = len(e.rep.Findings)
	m.held += e.size
	for m.held > maxMemoFindings && len(m.order) > 0 {
		m.dropLocked(m.order[0])
	}
}

func (m *findingsMemo) dropLocked(digest string) {
	e, ok := m.entries[digest]
	if !ok {
		return
	}
	m.held -= e.size
	m.pageBytes -= e.pageBytes
	delete(m.entries, digest)
	if i := slices.Index(m.order, digest); i >= 0 {
		m.order = slices.Delete(m.order, i, i+1)
	}
}
