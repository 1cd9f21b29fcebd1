// Command governance-report measures the governance report over many
// observed flows: a SQLite store in a temporary directory holding -flows
// flows (from -services services on -nodes nodes in three regions to the
// catalogue's data stores and to unmatched addresses), and the server's
// governance.Service building the report of every regulation from it
// (reading the flows, matching each to its data store, checking grants
// and residency) and rendering it as a table, -runs times.
//
//	go run ./bench/governance-report -flows 10000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/governance"
	"github.com/bulwark-sec/bulwark/internal/store"
)

func main() {
	flows := flag.Int("flows", 10000, "observed flows")
	services := flag.Int("services", 200, "services")
	nodes := flag.Int("nodes", 50, "nodes")
	runs := flag.Int("runs", 20, "reports built")
	flag.Parse()
	if err := run(*flows, *services, *nodes, *runs); err != nil {
		log.Fatal(err)
	}
}

type auditor struct{ st *store.Store }

func (a auditor) Do(ctx context.Context, fn func(tx *store.Store) ([]audit.Entry, error)) error {
	_, err := a.st.Audited(ctx, fn)
	return err
}

// catalogue has 6 regulations over 8 classes, 40 data stores (addresses
// 10.0.S.1:5432 and one prefix) and grants for half the services.
func catalogue(services int) string {
	var b strings.Builder
	classes := []string{"pii-eu", "pii-us", "pii-br", "pii-ca", "phi", "pci-pan", "pii-ca-health", "telemetry"}
	b.WriteString("classes:\n")
	for _, c := range classes {
		fmt.Fprintf(&b, "  - name: %s\n", c)
	}
	b.WriteString(`regulations:
  - {name: gdpr, classes: [pii-eu], regions: [eu-west-1, eu-central-1], retention: 3y}
  - {name: ccpa, classes: [pii-us]}
  - {name: lgpd, classes: [pii-br], regions: [sa-east-1]}
  - {name: pipeda, classes: [pii-ca, pii-ca-health], regions: [ca-central-1]}
  - {name: hipaa, classes: [phi, pii-ca-health], regions: [us-east-1, ca-central-1], retention: 6y}
  - {name: pci-dss, classes: [pci-pan], retention: 1y}
stores:
`)
	for s := range 40 {
		fmt.Fprintf(&b, "  - {name: store-%d, address: '10.0.%d.1:5432', classes: [%s]}\n", s, s, classes[s%len(classes)])
	}
	b.WriteString("  - {name: cards, address: '10.9.0.0/16', classes: [pci-pan]}\napplications:\n")
	for a := 0; a < services; a += 2 {
		fmt.Fprintf(&b, "  - {name: svc-%d, classes: [%s, %s]}\n", a, classes[a%len(classes)], classes[(a+3)%len(classes)])
	}
	return b.String()
}

func run(nFlows, services, nodes, runs int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "governance-report")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(ctx, filepath.Join(dir, "bulwark.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	cat, err := governance.Parse([]byte(catalogue(services)))
	if err != nil {
		return err
	}
	regions := []string{"eu-west-1", "us-east-1", "ca-central-1"}
	now := time.Now().UTC()
	rows := make([]store.DataFlow, 0, nFlows)
	for i := range nFlows {
		dest := fmt.Sprintf("10.0.%d.1:5432", i%48) // 40 stores, 8 unmatched
		if i%10 == 0 {
			dest = fmt.Sprintf("10.9.%d.%d:443", i%200, i%250)
		}
		node := i % nodes
		rows = append(rows, store.DataFlow{Node: fmt.Sprintf("node-%d", node), Container: fmt.Sprintf("c-%d", i),
			Destination: dest, Service: fmt.Sprintf("svc-%d", i%services), Region: regions[node%len(regions)],
			Count: int64(1 + i%7), First: now, Last: now})
	}
	t0 := time.Now()
	for i := 0; i < len(rows); i += 1000 {
		if err := st.AddDataFlows(ctx, rows[i:min(i+1000, len(rows))]); err != nil {
			return err
		}
	}
	fmt.Printf("stored %d flows in %v\n", nFlows, time.Since(t0).Round(time.Millisecond))
	svc := &governance.Service{Cat: cat, Store: st, Auditor: auditor{st}}
	var ds []time.Duration
	var rep governance.Report
	for range runs {
		t0 := time.Now()
		rep, err = svc.Report(ctx, "")
		if err != nil {
			return err
		}
		if err := rep.Render(io.Discard, "table"); err != nil {
			return err
		}
		ds = append(ds, time.Since(t0))
	}
	slices.Sort(ds)
	fmt.Printf("report of every regulation over %d flows (%d services, %d nodes): %d sections, %d violations, %d unmatched\n",
		rep.Flows, services, nodes, len(rep.Sections), len(rep.Violations), rep.Unmatched)
	fmt.Printf("read + build + render: n=%d p50=%v max=%v\n", len(ds), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	return nil
}
