package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// registryStore is what the keychain reads.
type registryStore interface {
	ListRegistries(ctx context.Context) ([]store.Registry, error)
}

// keychain resolves registry credentials from the registries registered
// over the API (sealed at rest; opened here, in memory, only when a
// request to that registry needs them), falling back to the Docker config
// and its credential helpers for registries without any.
type keychain struct {
	store registryStore
	key   *seal.Key
	log   *slog.Logger
}

// Resolve implements authn.Keychain.
func (k *keychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), target)
}

// ResolveContext implements authn.ContextKeychain.
func (k *keychain) ResolveContext(ctx context.Context, target authn.Resource) (authn.Authenticator, error) {
	regs, err := k.store.ListRegistries(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading registry credentials: %w", err)
	}
	for _, r := range regs {
		host, _, err := api.RegistryHost(r.URL)
		if err != nil || host != target.RegistryStr() || len(r.Credentials) == 0 {
			continue
		}
		plain, err := k.key.Open(r.Credentials, api.CredentialsContext(r.Name))
		if err != nil {
			return nil, fmt.Errorf("opening the credentials of registry %q: %w", r.Name, err)
		}
		var c api.RegistryCredentials
		if err := json.Unmarshal(plain, &c); err != nil {
			return nil, fmt.Errorf("decoding the credentials of registry %q: %w", r.Name, err)
		}
		return authn.FromConfig(authn.AuthConfig{Username: c.Username, Password: c.Password}), nil
	}
	return authn.DefaultKeychain.Resolve(target)
}
