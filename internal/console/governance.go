package console

import (
	"context"
	"net/http"
	"slices"

	"github.com/bulwark-sec/bulwark/internal/governance"
)

// Governance builds the governance report (governance.Service).
type Governance interface {
	Report(ctx context.Context, regulation string) (governance.Report, error)
}

// graph is the access graph drawn as SVG without a script: services on
// the left, data stores on the right, an edge per observed access,
// red when it is a violation.
type graph struct {
	Width, Height int
	Services      []node
	Stores        []node
	Edges         []edge
}

type node struct {
	Name string
	X, Y int
}

type edge struct {
	X1, Y1, X2, Y2 int
	Label          string
	Bad            bool
	Title          string
}

type governancePage struct {
	Enabled    bool
	Regulation string
	Report     governance.Report
	Graph      graph
	Known      []string
}

const (
	graphRow   = 36
	graphWidth = 720
)

// governance is the data governance page: the report of a regulation (or
// all) and its access graph.
func (c *console) governance(r *http.Request) (any, error) {
	pg := governancePage{Regulation: r.URL.Query().Get("regulation")}
	for k := range governance.Regulations {
		pg.Known = append(pg.Known, k)
	}
	slices.Sort(pg.Known)
	if c.opts.Governance == nil {
		return pg, nil
	}
	if pg.Regulation != "" && !slices.Contains(pg.Known, pg.Regulation) {
		return nil, &notFoundError{What: "regulation " + pg.Regulation, Why: "not one Bulwark knows"}
	}
	pg.Enabled = true
	rep, err := c.opts.Governance.Report(r.Context(), pg.Regulation)
	if err != nil {
		return nil, err
	}
	pg.Report, pg.Graph = rep, accessGraph(rep)
	return pg, nil
}

// accessGraph lays the observed access of rep out in two columns.
func accessGraph(rep governance.Report) graph {
	type key struct{ svc, store string }
	edges := map[key]*edge{}
	var svcs, stores []string
	for _, s := range rep.Sections {
		for _, a := range s.Observed {
			svc := a.Service
			if svc == "" {
				svc = "(no owner)"
			}
			if !slices.Contains(svcs, svc) {
				svcs = append(svcs, svc)
			}
			if !slices.Contains(stores, a.Store) {
				stores = append(stores, a.Store)
			}
			k := key{svc, a.Store}
			if edges[k] == nil {
				edges[k] = &edge{Title: svc + " → " + a.Store}
			}
			e := edges[k]
			e.Bad = e.Bad || !a.Granted || !a.InResidency
			e.Label = s.Class
		}
	}
	slices.Sort(svcs)
	slices.Sort(stores)
	g := graph{Width: graphWidth, Height: graphRow * (max(len(svcs), len(stores)) + 1)}
	y := func(i int) int { return graphRow*i + graphRow }
	for i, s := range svcs {
		g.Services = append(g.Services, node{Name: s, X: 170, Y: y(i)})
	}
	for i, s := range stores {
		g.Stores = append(g.Stores, node{Name: s, X: graphWidth - 170, Y: y(i)})
	}
	for k, e := range edges {
		e.X1, e.Y1 = 180, y(slices.Index(svcs, k.svc))-4
		e.X2, e.Y2 = graphWidth-180, y(slices.Index(stores, k.store))-4
		g.Edges = append(g.Edges, *e)
	}
	slices.SortFunc(g.Edges, func(a, b edge) int { return a.Y1*10000 + a.Y2 - (b.Y1*10000 + b.Y2) })
	return g
}
