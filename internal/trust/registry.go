package trust

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-sec/bulwark/internal/identity"
)

// maxDecisions bounds the containers the registry remembers; past it the
// oldest decisions are forgotten.
const maxDecisions = 200_000

// Decision is the last identity decision of one container: an issuance
// or a refusal with its reason.
type Decision struct {
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"` // x509-svid or jwt-svid
	SpiffeID  string    `json:"spiffeID,omitempty"`
	Node      string    `json:"node"`
	Container string    `json:"container"`
	Image     string    `json:"image"`
	Namespace string    `json:"namespace,omitempty"`
	Pod       string    `json:"pod,omitempty"`
	Issued    bool      `json:"issued"`
	Reason    string    `json:"reason,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	Serial    string    `json:"serial,omitempty"`
	Expiry    time.Time `json:"expiry,omitzero"`
	// Stale: the digest's certification changed since; the agent is
	// asking again.
	Stale bool `json:"stale,omitempty"`
}

// Registry remembers the last X.509-SVID decision of every container this
// server decided on, in memory. It answers "who holds which identity now"
// for `bulwark identity` and, by SPIFFE ID, for the secret store. A
// replica knows its own decisions; the audit log holds all of them.
type Registry struct {
	Now func() time.Time // nil: time.Now

	mu   sync.RWMutex
	m    map[string]Decision // by node + "/" + container
	byID map[string]string   // SPIFFE ID -> key of its latest issuance
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{m: map[string]Decision{}, byID: map[string]string{}} }

func (r *Registry) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Note records a decision (identity.Issuer's Record). JWT-SVIDs do not
// replace the container's X.509 decision unless refused.
func (r *Registry) Note(rec identity.Record) {
	if rec.Kind == "jwt-svid" && rec.Refusal == nil {
		return
	}
	w := rec.Workload
	d := Decision{Time: r.now().UTC(), Kind: rec.Kind, SpiffeID: rec.ID, Node: w.Node, Container: w.Container, Image: w.Image,
		Namespace: w.Namespace, Pod: w.Pod, Issued: rec.Refusal == nil, Serial: rec.Serial, Expiry: rec.Expiry}
	if rec.Refusal != nil {
		d.Reason, d.Detail = rec.Refusal.Reason, rec.Refusal.Detail
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.m) >= maxDecisions {
		r.dropOldestLocked()
	}
	key := w.Node + "/" + w.Container
	r.m[key] = d
	if d.Issued {
		r.byID[d.SpiffeID] = key
	}
}

func (r *Registry) dropOldestLocked() {
	var oldest string
	var t time.Time
	for k, d := range r.m {
		if oldest == "" || d.Time.Before(t) {
			oldest, t = k, d.Time
		}
	}
	if r.byID[r.m[oldest].SpiffeID] == oldest {
		delete(r.byID, r.m[oldest].SpiffeID)
	}
	delete(r.m, oldest)
}

// Invalidate marks the decisions on images of digests stale: their
// certification changed, so until the agent asks again they hold nothing
// for Workload.
func (r *Registry) Invalidate(digests []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, d := range r.m {
		if slices.Contains(digests, d.Image) {
			d.Stale = true
			r.m[k] = d
		}
	}
}

// List returns every decision, by node then container.
func (r *Registry) List() []Decision {
	r.mu.RLock()
	out := make([]Decision, 0, len(r.m))
	for _, d := range r.m {
		out = append(out, d)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b Decision) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return strings.Compare(a.Container, b.Container)
	})
	return out
}

// Workload is a live identity: issued, not expired, its digest's
// certification unchanged since.
type Workload struct {
	SpiffeID, Image, Node, Container string
	Expiry                           time.Time
}

// Workload answers for a SPIFFE ID: a container that holds it now, issued
// while its digest was certified and not revoked, it undrifted and its
// node heard from. False when no container holds it.
func (r *Registry) Workload(spiffeID string) (Workload, bool) {
	now := r.now()
	live := func(d Decision) bool { return d.SpiffeID == spiffeID && d.Issued && !d.Stale && now.Before(d.Expiry) }
	r.mu.RLock()
	defer r.mu.RUnlock()
	if d, ok := r.m[r.byID[spiffeID]]; ok && live(d) {
		return Workload{SpiffeID: d.SpiffeID, Image: d.Image, Node: d.Node, Container: d.Container, Expiry: d.Expiry}, true
	}
	// The latest holder lost it; another replica of the workload may
	// hold it still.
	for _, d := range r.m {
		if live(d) {
			return Workload{SpiffeID: d.SpiffeID, Image: d.Image, Node: d.Node, Container: d.Container, Expiry: d.Expiry}, true
		}
	}
	return Workload{}, false
}
