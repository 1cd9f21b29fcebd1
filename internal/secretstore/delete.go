package secretstore

import (
	"context"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Delete removes a secret and every version of it; workloads are refused
// it from then on. The audit entry keeps its metadata, never a value.
func (s *Service) Delete(ctx context.Context, actor, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	err := s.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		before, err := tx.VaultSecret(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := tx.DeleteVaultSecret(ctx, name); err != nil {
			return nil, err
		}
		return []audit.Entry{{Actor: actor, Action: "secret.delete", Object: "secret:" + name, Before: metaJSON(before, before.Current)}}, nil
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.secrets, name)
	s.mu.Unlock()
	s.recipients.forget(name)
	return nil
}

// Info returns one secret's listing.
func (s *Service) Info(name string) (Info, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.secrets[name]
	if e == nil {
		return Info{}, false
	}
	return Info{Name: e.meta.Name, Kind: e.meta.Kind, Version: e.meta.Current, Classes: nonNil(e.classes),
		Policy: e.policy, Regions: e.regions}, true
}
