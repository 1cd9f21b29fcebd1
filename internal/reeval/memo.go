package reeval

import (
	"context"
	"sync"

	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/osv"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// matcher is match.Match memoised per package for one Reevaluate. The
// affected inventories share most of their packages (a distribution base,
// popular libraries), and match.Match's findings for one package depend
// only on its advisory query and on the fields it copies into the
// finding's PackageRef: each distinct package is matched once per run, by
// match.Match itself on a one-package inventory, and an inventory's
// result is the concatenation in package order, sorted as Match sorts it.
// TestMemoMatchesMatch checks the result is match.Match's.
//
// The findings' slices are shared between the images of one run: a Judge
// must not modify them.
type matcher struct {
	src *cache
	mu  sync.Mutex
	m   map[pkgKey]*pkgEntry
}

type pkgKey struct {
	q                                              osv.Query
	name, version, typ, purl, layer, source, where string
}

type pkgEntry struct {
	once sync.Once
	res  *match.Result
	err  error
}

func newMatcher(src match.Source) *matcher {
	return &matcher{src: newCache(src), m: map[pkgKey]*pkgEntry{}}
}

func (m *matcher) Match(ctx context.Context, s *sbom.SBOM) (*match.Result, error) {
	out := &match.Result{Findings: []match.Finding{}}
	for _, p := range s.Packages {
		q, ok := osv.QueryFor(p, s.Distro)
		if !ok {
			continue
		}
		k := pkgKey{q: q, name: p.Name, version: p.Version, typ: p.Type, purl: p.PURL, layer: p.Layer}
		if p.Source != nil {
			k.source = p.Source.Name
		}
		if len(p.Locations) > 0 {
			k.where = p.Locations[0].Path
		}
		m.mu.Lock()
		en := m.m[k]
		if en == nil {
			en = &pkgEntry{}
			m.m[k] = en
		}
		m.mu.Unlock()
		en.once.Do(func() {
			en.res, en.err = match.Match(ctx, m.src, &sbom.SBOM{Distro: s.Distro, Packages: []sbom.Package{p}})
		})
		if en.err != nil {
			return nil, en.err
		}
		out.Findings = append(out.Findings, en.res.Findings...)
		out.Suppressed = append(out.Suppressed, en.res.Suppressed...)
		out.Warnings = append(out.Warnings, en.res.Warnings...)
	}
	out.Sort()
	return out, nil
}
