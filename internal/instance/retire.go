package instance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// ErrNotFound says no instance has the ID.
var ErrNotFound = errors.New("no such instance")

// Retire forgets instance id (its VM or enclave is gone), audited with
// the status it had, and names its image on the identity feed. A retired
// instance no longer withdraws its workload's identity (as a stale one
// does) and no longer vouches for it; registering under its ID again
// starts afresh.
func (t *Tracker) Retire(ctx context.Context, actor, id string) (Instance, error) {
	in, ok := t.Get(id)
	if !ok {
		return Instance{}, fmt.Errorf("retiring instance %q: %w", id, ErrNotFound)
	}
	err := t.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		if err := tx.DeleteTEEInstance(ctx, id); errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("retiring instance %q: %w", id, ErrNotFound)
		} else if err != nil {
			return nil, err
		}
		before, _ := json.Marshal(map[string]any{"status": in.Status, "reason": in.Reason, "workload": in.Workload,
			"node": in.Node, "image": in.Image, "kind": in.Kind, "region": in.Region})
		return []audit.Entry{{Actor: actor, Action: "instance.retire", Object: "instance:" + id, Before: before},
			imageEntry(actor, in.Image, []string{id}, "retired")}, nil
	})
	if err != nil {
		return Instance{}, err
	}
	t.mu.Lock()
	delete(t.byID, id)
	delete(t.byWorkload[in.Workload], id)
	if len(t.byWorkload[in.Workload]) == 0 {
		delete(t.byWorkload, in.Workload)
	}
	t.mu.Unlock()
	t.log.Info("instance retired", "instance", id, "workload", in.Workload, "status", in.Status)
	return in, nil
}
