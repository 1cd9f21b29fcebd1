package trust

import (
	"context"
	"fmt"
	"time"

	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// FactStore is what Facts reads (store.WorkloadFacts).
type FactStore interface {
	WorkloadFacts(ctx context.Context, digest, node, container string) (store.WorkloadFacts, error)
}

// Facts returns what the server knows of a workload, for identity.Decide:
// one indexed read, no cache, so a revocation or a drift report that
// committed is seen by the next decision on any replica.
func Facts(st FactStore) func(ctx context.Context, w identity.Workload) (identity.Facts, error) {
	return func(ctx context.Context, w identity.Workload) (identity.Facts, error) {
		f := identity.Facts{Image: w.Image}
		wf, err := st.WorkloadFacts(ctx, w.Image, w.Node, w.Container)
		if err != nil {
			return f, err
		}
		if c := wf.Certification; c != nil {
			f.Certified = c.Status == store.Certified
			if c.Status == store.Revoked {
				f.Revoked, f.RevokedReason = true, c.Reason
			}
		}
		if d := wf.Drift; d != nil {
			f.Drifted = true
			f.DriftDetail = fmt.Sprintf("%s exec of %s (event %d at %s)", d.Verdict, d.Path, d.ID, d.Time.UTC().Format(time.RFC3339))
		}
		f.Heartbeat = wf.LastSeen
		return f, nil
	}
}
