// Package instancetest seeds a store with many registered instances for
// tests and benchmarks of the revocation loop: rows as Register would have
// written them after verifying evidence, without making the evidence.
package instancetest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Fleet describes the seeded instances: N in all, the first SGX of them
// SGX enclaves at the synthetic platform's TCB (attesttest's CPUSVN 5,
// PCESVN 11), the rest SEV-SNP guests whose reported SNP SPL cycles
// through SNPLevels.
type Fleet struct {
	N, SGX    int
	SNPBase   attest.SNPTCB
	SNPLevels []uint8
	Now       time.Time
}

// Seed writes the fleet as verified instances in one transaction and
// returns how many SNP instances run at each SNP SPL.
func Seed(ctx context.Context, st *store.Store, f Fleet) (map[uint8]int, error) {
	perLevel := map[uint8]int{}
	rows := make([]store.TEEInstance, 0, f.N)
	cpusvn := make([]byte, 16)
	for i := range cpusvn[:8] {
		cpusvn[i] = 5
	}
	for i := range f.N {
		res := attest.Result{Verified: f.Now, Measurement: make([]byte, 48), ReportData: make([]byte, 64)}
		if i < f.SGX {
			res.Kind, res.TCBStatus = attest.SGX, "UpToDate"
			res.TCB = attest.TCB{CPUSVN: cpusvn, PCESVN: 11, FMSPC: "00906ed50000", QEISVSVN: 8}
		} else {
			tcb := f.SNPBase
			tcb.SNP = f.SNPLevels[i%len(f.SNPLevels)]
			perLevel[tcb.SNP]++
			res.Kind, res.TCB, res.TCBStatus = attest.SNP, attest.TCB{SNP: &tcb}, "reported "+tcb.String()
		}
		b, err := json.Marshal(res)
		if err != nil {
			return nil, err
		}
		rows = append(rows, store.TEEInstance{ID: ID(i), Workload: fmt.Sprintf("w-%d", i%100),
			Node: fmt.Sprintf("node-%d", i%500), Region: "eu-west", RegionSource: "node-config", Kind: string(res.Kind),
			Image: "sha256:" + fmt.Sprintf("%064x", i%50), Status: "verified", Result: string(b),
			Registered: f.Now, Verified: f.Now, Updated: f.Now})
	}
	return perLevel, st.PutTEEInstances(ctx, rows)
}

// ID is the i-th seeded instance's ID.
func ID(i int) string { return fmt.Sprintf("inst-%05d", i) }
