package secretstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Auditor commits a change with its audit entries in one transaction
// (api.Auditor; store.Store.Audited wrapped).
type Auditor interface {
	Do(ctx context.Context, fn func(tx *store.Store) ([]audit.Entry, error)) error
}

// Catalogue knows the data classes: whether a class exists and the
// regions its data may be processed in (nil: anywhere).
type Catalogue interface {
	ClassRegions(class string) (regions []string, known bool)
}

// Grants reports whether an application is granted a data class.
type Grants interface {
	Granted(application, class string) bool
}

// Workloads knows the running workloads by SPIFFE ID (issue 13's identity
// service, fed by the agents and the certifications).
type Workloads interface {
	Workload(id string) (Workload, bool)
}

// Service keeps the secrets: management (Put, Rotate, SetPolicy, Get,
// List) and release to workloads (Release), which decides from memory.
type Service struct {
	st        *store.Store
	kek       KEK
	auditor   Auditor
	catalogue Catalogue
	workloads Workloads
	grants    Grants

	releases   *audit.Group
	recipients recipients

	mu      sync.RWMutex
	secrets map[string]*entry
}

// entry is a secret as the release path needs it.
type entry struct {
	meta    store.VaultSecret
	policy  Policy
	classes []string
	regions []string // nil: any region
	version int64    // of value
	value   *Value   // opened on first release, nil until then
}

// Config is what a Service is made of; Workloads and Grants may be nil
// (every release refused as an unknown workload; no application granted).
type Config struct {
	Store     *store.Store
	KEK       KEK
	Auditor   Auditor
	Catalogue Catalogue
	Workloads Workloads
	Grants    Grants
}

// New returns the Service of c with every secret's metadata loaded.
func New(ctx context.Context, c Config) (*Service, error) {
	s := &Service{st: c.Store, kek: c.KEK, auditor: c.Auditor, catalogue: c.Catalogue, workloads: c.Workloads,
		grants: c.Grants, secrets: map[string]*entry{}, releases: &audit.Group{Commit: func(ctx context.Context, es []audit.Entry) error {
			return c.Auditor.Do(ctx, func(*store.Store) ([]audit.Entry, error) { return es, nil })
		}}}
	if err := s.Load(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Load (re)reads every secret's metadata from the store: after a change
// by another replica.
func (s *Service) Load(ctx context.Context) error {
	metas, err := s.st.VaultSecrets(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]*entry, len(metas))
	for _, meta := range metas {
		e, err := s.newEntry(meta)
		if err != nil {
			return fmt.Errorf("loading secret %q: %w", meta.Name, err)
		}
		s.mu.RLock()
		if old := s.secrets[meta.Name]; old != nil && old.version == meta.Current {
			e.version, e.value = old.version, old.value
		}
		s.mu.RUnlock()
		m[meta.Name] = e
	}
	s.mu.Lock()
	s.secrets = m
	s.mu.Unlock()
	return nil
}

func (s *Service) newEntry(meta store.VaultSecret) (*entry, error) {
	e := &entry{meta: meta}
	if err := json.Unmarshal([]byte(meta.Classes), &e.classes); err != nil {
		return nil, fmt.Errorf("decoding classes: %w", err)
	}
	var err error
	if e.policy, err = ParsePolicy([]byte(meta.Policy)); err != nil {
		return nil, err
	}
	if e.regions, err = s.regions(e.policy, e.classes); err != nil {
		return nil, err
	}
	return e, nil
}

// regions is where a secret may be released: the policy's regions
// narrowed by each class's residency; nil means anywhere.
func (s *Service) regions(p Policy, classes []string) ([]string, error) {
	var out []string
	if len(p.Regions) > 0 {
		out = slices.Clone(p.Regions)
	}
	for _, c := range classes {
		rs, ok := s.catalogue.ClassRegions(c)
		if !ok {
			return nil, invalid("unknown data class %q", c)
		}
		if rs == nil {
			continue
		}
		if out == nil {
			out = slices.Clone(rs)
			continue
		}
		out = slices.DeleteFunc(out, func(r string) bool { return !slices.Contains(rs, r) })
	}
	if out != nil && len(out) == 0 {
		out = []string{} // classes and policy disagree: released nowhere
	}
	return out, nil
}

// Spec is what Put stores besides the value.
type Spec struct {
	Kind    string
	Classes []string
	Policy  Policy
}

// Put creates a secret (version 1) or, when it exists, adds a version
// with spec's kind, classes and policy. It returns the version.
func (s *Service) Put(ctx context.Context, actor, name string, spec Spec, v Value) (int64, error) {
	meta, err := s.prepare(name, spec, v)
	if err != nil {
		return 0, err
	}
	prev := int64(0)
	if cur, err := s.st.VaultSecret(ctx, name); err == nil {
		prev = cur.Current
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	return s.write(ctx, actor, "secret.put", meta, prev, v)
}

// Create creates a secret (version 1) and fails with
// store.ErrSecretExists when the name is taken, also when a concurrent
// Create (on this or another replica) committed first: the store's
// insert decides, not an earlier look.
func (s *Service) Create(ctx context.Context, actor, name string, spec Spec, v Value) error {
	meta, err := s.prepare(name, spec, v)
	if err != nil {
		return err
	}
	_, err = s.write(ctx, actor, "secret.put", meta, 0, v)
	return err
}

// prepare validates a secret's name, value and spec and returns its
// metadata row.
func (s *Service) prepare(name string, spec Spec, v Value) (store.VaultSecret, error) {
	if err := ValidName(name); err != nil {
		return store.VaultSecret{}, err
	}
	if err := v.validate(spec.Kind); err != nil {
		return store.VaultSecret{}, err
	}
	if err := spec.Policy.Validate(); err != nil {
		return store.VaultSecret{}, err
	}
	slices.Sort(spec.Classes)
	spec.Classes = slices.Compact(spec.Classes)
	if _, err := s.regions(spec.Policy, spec.Classes); err != nil {
		return store.VaultSecret{}, err
	}
	classes, _ := json.Marshal(nonNil(spec.Classes))
	policy, _ := json.Marshal(spec.Policy)
	return store.VaultSecret{Name: name, Kind: spec.Kind, Classes: string(classes), Policy: string(policy)}, nil
}

// Rotate adds a version with a new value, keeping kind, classes and
// policy; workloads get it on their next fetch.
func (s *Service) Rotate(ctx context.Context, actor, name string, v Value) (int64, error) {
	meta, err := s.st.VaultSecret(ctx, name)
	if err != nil {
		return 0, err
	}
	if err := v.validate(meta.Kind); err != nil {
		return 0, err
	}
	return s.write(ctx, actor, "secret.rotate", meta, meta.Current, v)
}

func (s *Service) write(ctx context.Context, actor, action string, meta store.VaultSecret, prev int64, v Value) (int64, error) {
	version := prev + 1
	wrapped, ct, err := envelope(s.kek, v.encode(), versionContext(meta.Name, version))
	if err != nil {
		return 0, fmt.Errorf("sealing secret %q: %w", meta.Name, err)
	}
	err = s.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		if _, err := tx.PutVaultVersion(ctx, meta, prev, store.VaultVersion{KEK: s.kek.Name(), WrappedKey: wrapped, Ciphertext: ct}); err != nil {
			return nil, err
		}
		return []audit.Entry{{Actor: actor, Action: action, Object: "secret:" + meta.Name, After: metaJSON(meta, version)}}, nil
	})
	if err != nil {
		return 0, err
	}
	meta.Current = version
	e, err := s.newEntry(meta)
	if err != nil {
		return 0, err
	}
	e.version, e.value = version, &v
	s.mu.Lock()
	s.secrets[meta.Name] = e
	s.mu.Unlock()
	return version, nil
}

// metaJSON is what the audit log keeps of a secret: never its value.
func metaJSON(m store.VaultSecret, version int64) []byte {
	b, _ := json.Marshal(map[string]any{"kind": m.Kind, "version": version,
		"classes": json.RawMessage(m.Classes), "policy": json.RawMessage(m.Policy)})
	return b
}

// SetPolicy replaces a secret's classes and policy (bulwark secret grant).
func (s *Service) SetPolicy(ctx context.Context, actor, name string, classes []string, p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	slices.Sort(classes)
	classes = slices.Compact(classes)
	if _, err := s.regions(p, classes); err != nil {
		return err
	}
	cj, _ := json.Marshal(nonNil(classes))
	pj, _ := json.Marshal(p)
	var meta store.VaultSecret
	err := s.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		before, err := tx.VaultSecret(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := tx.SetVaultPolicy(ctx, name, string(cj), string(pj)); err != nil {
			return nil, err
		}
		meta = before
		meta.Classes, meta.Policy = string(cj), string(pj)
		return []audit.Entry{{Actor: actor, Action: "secret.policy", Object: "secret:" + name,
			Before: metaJSON(before, before.Current), After: metaJSON(meta, meta.Current)}}, nil
	})
	if err != nil {
		return err
	}
	e, err := s.newEntry(meta)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if old := s.secrets[name]; old != nil {
		e.version, e.value = old.version, old.value
	}
	s.secrets[name] = e
	s.mu.Unlock()
	return nil
}

// Info is a secret's listing: metadata only.
type Info struct {
	Name    string   `json:"name"`
	Kind    string   `json:"kind"`
	Version int64    `json:"version"`
	Classes []string `json:"classes"`
	Policy  Policy   `json:"policy"`
	Regions []string `json:"regions,omitempty"` // where it may be released (nil: anywhere)
}

// List lists every secret's metadata, by name.
func (s *Service) List() []Info {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Info, 0, len(s.secrets))
	for _, e := range s.secrets {
		out = append(out, Info{Name: e.meta.Name, Kind: e.meta.Kind, Version: e.meta.Current, Classes: nonNil(e.classes),
			Policy: e.policy, Regions: e.regions})
	}
	slices.SortFunc(out, func(a, b Info) int { return cmpString(a.Name, b.Name) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Get opens version (0: current) of a secret for an administrator; the
// read is audited (without the value).
func (s *Service) Get(ctx context.Context, actor, name string, version int64) (Value, int64, error) {
	v, err := s.st.VaultVersion(ctx, name, version)
	if err != nil {
		return Value{}, 0, err
	}
	val, err := s.open(v)
	if err != nil {
		return Value{}, 0, err
	}
	err = s.auditor.Do(ctx, func(*store.Store) ([]audit.Entry, error) {
		after, _ := json.Marshal(map[string]any{"version": v.Version})
		return []audit.Entry{{Actor: actor, Action: "secret.read", Object: "secret:" + name, After: after}}, nil
	})
	return val, v.Version, err
}

func (s *Service) open(v store.VaultVersion) (Value, error) {
	if v.KEK != s.kek.Name() {
		return Value{}, fmt.Errorf("secret %q version %d is wrapped by key %q, the server has %q", v.Name, v.Version, v.KEK, s.kek.Name())
	}
	pt, err := open(s.kek, v.WrappedKey, v.Ciphertext, versionContext(v.Name, v.Version))
	if err != nil {
		return Value{}, fmt.Errorf("opening secret %q version %d: %w", v.Name, v.Version, err)
	}
	return decodeValue(pt)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
