package store

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// TestVaultCreateIsAtomic: of concurrent creates (prev 0) of one secret
// on SQLite and PostgreSQL, one commits version 1 and the others get
// ErrSecretExists (an ErrVersionConflict); none adds a version.
func TestVaultCreateIsAtomic(t *testing.T) {
	eachBackend(t, func(t *testing.T, open storeFactory) {
		s, _ := open(t)
		ctx := context.Background()
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = s.PutVaultVersion(ctx, VaultSecret{Name: "shop/db", Kind: "kv", Classes: "[]", Policy: "{}"}, 0,
					VaultVersion{KEK: "k", WrappedKey: []byte{byte(i)}, Ciphertext: []byte{byte(i)}})
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrSecretExists) || !errors.Is(err, ErrVersionConflict):
				t.Errorf("a losing create: %v, want ErrSecretExists", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d of %d concurrent creates succeeded: %v", ok, n, errs)
		}
		m, err := s.VaultSecret(ctx, "shop/db")
		if err != nil || m.Current != 1 {
			t.Fatalf("after the creates: %+v %v", m, err)
		}
		if _, err := s.VaultVersion(ctx, "shop/db", 2); !errors.Is(err, ErrNotFound) {
			t.Fatalf("version 2 exists: %v", err)
		}
	})
}
