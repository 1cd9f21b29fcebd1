package instance

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/yamlmsg"
	"sigs.k8s.io/yaml"
)

// Status is an instance's attestation status.
type Status string

// The statuses. Only Verified is trusted.
const (
	Verified Status = "verified" // evidence verified, re-attested in time
	Stale    Status = "stale"    // verified once, not re-attested in time
	Failed   Status = "failed"   // its last evidence was refused
	Revoked  Status = "revoked"  // verified, then refused by new collateral or policy
)

// Region sources, strongest first.
const (
	RegionPlatform   = "platform"    // the hardware-signed chip ID, in the operator's platform table
	RegionHostData   = "host-data"   // HOST_DATA/MRCONFIGID set by the provider at launch
	RegionNodeConfig = "node-config" // the registrant's word: the node's configuration
)

// Instance is one confidential instance as the server knows it.
type Instance struct {
	ID           string      `json:"id"`
	Workload     string      `json:"workload"`
	Node         string      `json:"node"`
	Region       string      `json:"region"`
	RegionSource string      `json:"regionSource"`
	Kind         attest.Kind `json:"kind"`
	Image        string      `json:"image"`
	Status       Status      `json:"status"`
	Reason       string      `json:"reason,omitempty"`
	Detail       string      `json:"detail,omitempty"`
	// Result and Verified are the last verified evidence's (kept through a
	// later failure: they bind the ID to its machine).
	Result     *attest.Result `json:"result,omitempty"`
	Registered time.Time      `json:"registered"`
	Verified   time.Time      `json:"verified,omitzero"`
	Updated    time.Time      `json:"updated"`
}

// Policy is what the tracker requires beyond the verifier's TEE policy.
type Policy struct {
	// Regions lists the regions instances may run in; empty allows any.
	Regions []string `json:"regions,omitempty"`
	// RequireAttestedRegion refuses a region known only from the node's
	// configuration.
	RequireAttestedRegion bool `json:"requireAttestedRegion,omitempty"`
	// Platforms maps a platform's hardware ID (hex SNP CHIP_ID) to the
	// region it is installed in.
	Platforms map[string]string `json:"platforms,omitempty"`
	// ReattestEvery is how long a verification holds; an instance not
	// re-attested within it is stale. Zero is DefaultReattestEvery.
	ReattestEvery time.Duration `json:"-"`
	// ChallengeTTL is how long a nonce may be used; zero is
	// DefaultChallengeTTL.
	ChallengeTTL time.Duration `json:"-"`
}

// Defaults of Policy's zero fields.
const (
	DefaultReattestEvery = 10 * time.Minute
	DefaultChallengeTTL  = 2 * time.Minute
)

// References returns the reference predicate recorded in image's
// certification (attest.ReferencePredicateType), or an error when there
// is none.
type References func(ctx context.Context, image string) (*attest.ReferencePredicate, error)

// Auditor commits a change with its audit entries in one transaction
// (api.Auditor).
type Auditor interface {
	Do(ctx context.Context, fn func(tx *store.Store) ([]audit.Entry, error)) error
}

// Tracker holds every instance. It is safe for concurrent use.
type Tracker struct {
	auditor  Auditor
	refs     References
	policy   Policy
	now      func() time.Time
	log      *slog.Logger
	verifier atomic.Pointer[attest.Verifier]

	mu         sync.RWMutex
	byID       map[string]*Instance
	byWorkload map[string]map[string]*Instance // workload -> ID -> instance, as byID
}

// Config configures New.
type Config struct {
	Auditor    Auditor
	References References
	Verifier   *attest.Verifier
	Policy     Policy
	Now        func() time.Time // nil: time.Now
	Logger     *slog.Logger     // nil: slog.Default()
}

// New returns a tracker; Load fills it from the store.
func New(c Config) (*Tracker, error) {
	if c.Auditor == nil || c.References == nil || c.Verifier == nil {
		return nil, fmt.Errorf("instance tracker needs an auditor, a reference source and a verifier")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Policy.ReattestEvery <= 0 {
		c.Policy.ReattestEvery = DefaultReattestEvery
	}
	if c.Policy.ChallengeTTL <= 0 {
		c.Policy.ChallengeTTL = DefaultChallengeTTL
	}
	t := &Tracker{auditor: c.Auditor, refs: c.References, policy: c.Policy, now: c.Now, log: c.Logger, byID: map[string]*Instance{},
		byWorkload: map[string]map[string]*Instance{}}
	t.verifier.Store(c.Verifier)
	return t, nil
}

// Lister is what Load needs of the store.
type Lister interface {
	TEEInstances(ctx context.Context) ([]store.TEEInstance, error)
}

// Load replaces the tracker's instances with the store's.
func (t *Tracker) Load(ctx context.Context, st Lister) error {
	rows, err := st.TEEInstances(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]*Instance, len(rows))
	for _, r := range rows {
		in, err := fromRow(r)
		if err != nil {
			return err
		}
		m[in.ID] = in
	}
	bw := map[string]map[string]*Instance{}
	for id, in := range m {
		if bw[in.Workload] == nil {
			bw[in.Workload] = map[string]*Instance{}
		}
		bw[in.Workload][id] = in
	}
	t.mu.Lock()
	t.byID, t.byWorkload = m, bw
	t.mu.Unlock()
	return nil
}

// List returns every instance (copies), by ID; workload filters when set.
func (t *Tracker) List(workload string) []Instance {
	t.mu.RLock()
	from := t.byID
	if workload != "" {
		from = t.byWorkload[workload] // an ID keeps its workload
	}
	out := make([]Instance, 0, len(from))
	for _, in := range from {
		out = append(out, *in)
	}
	t.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Get returns one instance.
func (t *Tracker) Get(id string) (Instance, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	in, ok := t.byID[id]
	if !ok {
		return Instance{}, false
	}
	return *in, true
}

// Trusted says whether instance id may receive secrets and identities now:
// only a verified instance whose verification has not outlived
// ReattestEvery is. The reason explains a refusal. It reads memory only.
func (t *Tracker) Trusted(id string) (bool, string) {
	t.mu.RLock()
	in, ok := t.byID[id]
	var s Status
	var verified time.Time
	var reason string
	if ok {
		s, verified, reason = in.Status, in.Verified, in.Reason
	}
	t.mu.RUnlock()
	switch {
	case !ok:
		return false, fmt.Sprintf("instance %q is not registered", id)
	case s != Verified:
		return false, fmt.Sprintf("instance %q is %s (%s)", id, s, reason)
	case t.now().Sub(verified) > t.policy.ReattestEvery:
		return false, fmt.Sprintf("instance %q last attested %s ago, more than %s", id, t.now().Sub(verified).Round(time.Second), t.policy.ReattestEvery)
	}
	return true, ""
}

// Verifier is the verifier in use.
func (t *Tracker) Verifier() *attest.Verifier { return t.verifier.Load() }

func toRow(in *Instance) (store.TEEInstance, error) {
	var res []byte
	if in.Result != nil {
		var err error
		if res, err = json.Marshal(in.Result); err != nil {
			return store.TEEInstance{}, fmt.Errorf("encoding result of %q: %w", in.ID, err)
		}
	}
	return store.TEEInstance{ID: in.ID, Workload: in.Workload, Node: in.Node, Region: in.Region, RegionSource: in.RegionSource,
		Kind: string(in.Kind), Image: in.Image, Status: string(in.Status), Reason: in.Reason, Detail: in.Detail,
		Result: string(res), Registered: in.Registered, Verified: in.Verified, Updated: in.Updated}, nil
}

func fromRow(r store.TEEInstance) (*Instance, error) {
	in := &Instance{ID: r.ID, Workload: r.Workload, Node: r.Node, Region: r.Region, RegionSource: r.RegionSource,
		Kind: attest.Kind(r.Kind), Image: r.Image, Status: Status(r.Status), Reason: r.Reason, Detail: r.Detail,
		Registered: r.Registered, Verified: r.Verified, Updated: r.Updated}
	if r.Result != "" {
		in.Result = &attest.Result{}
		if err := json.Unmarshal([]byte(r.Result), in.Result); err != nil {
			return nil, fmt.Errorf("decoding result of instance %q: %w", r.ID, err)
		}
	}
	return in, nil
}

// LoadPolicy reads an instance policy file (YAML or JSON: regions,
// requireAttestedRegion, platforms, reattestEvery, challengeTtl); unknown
// keys are errors.
func LoadPolicy(path string) (Policy, error) {
	var p Policy
	b, err := os.ReadFile(path)
	if err != nil {
		return p, fmt.Errorf("reading instance policy: %w", err)
	}
	var raw struct {
		Regions               []string          `json:"regions"`
		RequireAttestedRegion bool              `json:"requireAttestedRegion"`
		Platforms             map[string]string `json:"platforms"`
		ReattestEvery         string            `json:"reattestEvery"`
		ChallengeTTL          string            `json:"challengeTtl"`
	}
	if err := yaml.UnmarshalStrict(b, &raw); err != nil {
		return p, fmt.Errorf("parsing instance policy %s: %s", path, yamlmsg.Of(err))
	}
	p = Policy{Regions: raw.Regions, RequireAttestedRegion: raw.RequireAttestedRegion, Platforms: raw.Platforms}
	for _, d := range []struct {
		s   string
		dst *time.Duration
	}{{raw.ReattestEvery, &p.ReattestEvery}, {raw.ChallengeTTL, &p.ChallengeTTL}} {
		if d.s == "" {
			continue
		}
		if *d.dst, err = time.ParseDuration(d.s); err != nil || *d.dst <= 0 {
			return p, fmt.Errorf("instance policy %s: duration %q is not a positive duration", path, d.s)
		}
	}
	return p, nil
}

// WorkloadTEE is the TEE kind workload holds for the secret store's and
// identity issuance's release policies (secretstore.Workload.TEE): the
// kind of its instances when it has at least one and every one of them
// is trusted now and of one kind (the caller may be any replica), else ""
// and why not.
func (t *Tracker) WorkloadTEE(workload string) (attest.Kind, string) {
	var ids []string
	t.mu.RLock()
	for id := range t.byWorkload[workload] {
		ids = append(ids, id)
	}
	t.mu.RUnlock()
	if len(ids) == 0 {
		return "", fmt.Sprintf("workload %q has no registered confidential instance", workload)
	}
	sort.Strings(ids)
	var kind attest.Kind
	for _, id := range ids {
		if ok, why := t.Trusted(id); !ok {
			return "", why
		}
		in, _ := t.Get(id)
		if kind != "" && in.Kind != kind {
			return "", fmt.Sprintf("workload %q runs in both %s and %s", workload, kind, in.Kind)
		}
		kind = in.Kind
	}
	return kind, ""
}
