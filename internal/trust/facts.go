package trust

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// FactStore is what Facts reads.
type FactStore interface {
	Certification(ctx context.Context, digest string) (store.Certification, error)
	ContainerDrift(ctx context.Context, node, container string) (*store.RuntimeEvent, error)
	NodeLastSeen(ctx context.Context, node string) (time.Time, error)
}

// Facts returns what the server knows of a workload, for identity.Decide:
// three indexed reads, no cache, so a revocation or a drift report that
// committed is seen by the next decision on any replica.
func Facts(st FactStore) func(ctx context.Context, w identity.Workload) (identity.Facts, error) {
	return func(ctx context.Context, w identity.Workload) (identity.Facts, error) {
		f := identity.Facts{Image: w.Image}
		c, err := st.Certification(ctx, w.Image)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return f, err
		default:
			f.Certified = c.Status == store.Certified
			if c.Status == store.Revoked {
				f.Revoked, f.RevokedReason = true, c.Reason
			}
		}
		d, err := st.ContainerDrift(ctx, w.Node, w.Container)
		if err != nil {
			return f, err
		}
		if d != nil {
			f.Drifted = true
			f.DriftDetail = fmt.Sprintf("%s exec of %s (event %d at %s)", d.Verdict, d.Path, d.ID, d.Time.UTC().Format(time.RFC3339))
		}
		if f.Heartbeat, err = st.NodeLastSeen(ctx, w.Node); err != nil {
			return f, err
		}
		return f, nil
	}
}
