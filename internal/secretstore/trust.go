package secretstore

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Trust is the server's Workloads: what it knows of each running workload
// from its own store, never from the workload. Every Poll it reads the
// agents' last heartbeats (node, container, image digest, pod labels),
// the images' certifications and owner applications, and the drift
// events recorded since the last read, names each container with the
// identity template, and keeps the result in memory, so Workload answers
// from a map. A node whose agent has been silent for longer than
// NodeGrace has no known workloads.
type Trust struct {
	Store       *store.Store
	TrustDomain spiffeid.TrustDomain
	Template    *identity.Template
	// Policy is the name of the server's policy: a certified digest is
	// certified under it (a release policy's certifiedUnder).
	Policy string
	// Region of a node ("" unknown): the server's resolution (attested,
	// configured, reported).
	Region func(node string) string
	// Issued, when set, names the container an identity was issued to
	// (the identity service's registry): a release to that identity is
	// decided on that container alone. An identity it does not know is
	// judged by the template over every running container.
	Issued func(spiffeID string) (node, container string, ok bool)
	// TEE is the attestation kind the workload with SPIFFE ID id holds
	// now ("" none): every confidential instance registered under that
	// identity verified and of one kind (instance.Tracker.WorkloadTEE).
	TEE func(id string) string
	// IssuedTo is the identity issued to a container, the other way.
	IssuedTo  func(node, container string) (spiffeID string, ok bool)
	Poll      time.Duration // zero: one second
	NodeGrace time.Duration // zero: identity.DefaultNodeGrace
	Log       *slog.Logger
	Now       func() time.Time

	mu        sync.RWMutex
	byID      map[string][]Workload
	byKey     map[string]Workload // node/container, under its own identity's name
	drifted   map[string]bool     // node/container
	lastDrift int64
	images    map[string]store.Image
}

var _ Workloads = (*Trust)(nil)

// Workload is what the server knows of the workloads named id. When
// several running containers carry the same identity (replicas of one
// service account), the answer is the least trusted view of them all:
// drifted if any drifted, certified only under what all are certified
// under, a region only if they share it, because the caller may be any
// of them.
func (t *Trust) Workload(id string) (Workload, bool) {
	if t.Issued != nil {
		if node, container, ok := t.Issued(id); ok {
			t.mu.RLock()
			w, running := t.byKey[node+"/"+container]
			t.mu.RUnlock()
			w.ID = id
			return t.withTEE(w), running
		}
	}
	t.mu.RLock()
	ws := t.byID[id]
	t.mu.RUnlock()
	if len(ws) == 0 {
		return Workload{}, false
	}
	w := ws[0]
	w.Certified = slices.Clone(w.Certified)
	for _, o := range ws[1:] {
		w.Drifted = w.Drifted || o.Drifted
		w.Certified = slices.DeleteFunc(w.Certified, func(p string) bool { return !slices.Contains(o.Certified, p) })
		if o.Region != w.Region {
			w.Region = ""
		}
		if o.Application != w.Application {
			w.Application = ""
		}
		if o.Digest != w.Digest {
			w.Digest = "(several)"
		}
		if !strings.Contains(","+w.Node+",", ","+o.Node+",") {
			w.Node += "," + o.Node
		}
	}
	return t.withTEE(w), true
}

// withTEE fills w.TEE from the attestation status of its identity.
func (t *Trust) withTEE(w Workload) Workload {
	if t.TEE != nil && w.ID != "" {
		w.TEE = t.TEE(w.ID)
	}
	return w
}

// Container is what the server knows of container on node, under the
// identity it was issued (IssuedTo) or else the template's name ("" when
// neither names it).
func (t *Trust) Container(node, container string) (Workload, bool) {
	t.mu.RLock()
	w, ok := t.byKey[node+"/"+container]
	t.mu.RUnlock()
	if ok && t.IssuedTo != nil {
		if id, issued := t.IssuedTo(node, container); issued {
			w.ID = id
		}
	}
	return t.withTEE(w), ok
}

// Run refreshes every Poll until ctx ends; a failed refresh is logged and
// the previous view kept.
func (t *Trust) Run(ctx context.Context) error {
	poll := t.Poll
	if poll <= 0 {
		poll = time.Second
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if err := t.Refresh(ctx); err != nil && ctx.Err() == nil && t.Log != nil {
			t.Log.Warn("refreshing workload trust", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Refresh reads what is new from the store and rebuilds the view.
func (t *Trust) Refresh(ctx context.Context) error {
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	grace := t.NodeGrace
	if grace <= 0 {
		grace = identity.DefaultNodeGrace
	}
	t.mu.RLock()
	drifted, last, images := t.drifted, t.lastDrift, t.images
	t.mu.RUnlock()
	drifted = cloneMap(drifted)
	for {
		ds, err := t.Store.DriftSince(ctx, last, 5000)
		if err != nil {
			return err
		}
		for _, d := range ds {
			drifted[d.Node+"/"+d.Container] = true
			last = d.ID
		}
		if len(ds) < 5000 {
			break
		}
	}
	var running []agentproto.Container
	var nodes []string
	for after := ""; ; {
		page, err := t.Store.NodesPage(ctx, after, 500)
		if err != nil {
			return err
		}
		for _, n := range page {
			after = n.Name
			if now().Sub(n.LastSeen) > grace {
				continue
			}
			var cs []agentproto.Container
			if err := json.Unmarshal([]byte(n.Containers), &cs); err != nil {
				// one bad row must not blind the view of every node: its
				// workloads are unknown (refused), the rest stand
				if t.Log != nil {
					t.Log.Warn("reading a node's containers", "node", n.Name, "err", err)
				}
				continue
			}
			for _, c := range cs {
				running = append(running, c)
				nodes = append(nodes, n.Name)
			}
		}
		if len(page) < 500 {
			break
		}
	}
	digests, known := []string{}, images
	images = map[string]store.Image{} // only the running ones are kept
	for _, c := range running {
		if c.Image == "" || slices.Contains(digests, c.Image) {
			continue
		}
		digests = append(digests, c.Image)
		if img, ok := known[c.Image]; ok {
			images[c.Image] = img
		} else if img, err := t.Store.Image(ctx, c.Image); err == nil {
			images[c.Image] = img
		}
	}
	certs, err := t.Store.CertificationsOf(ctx, digests)
	if err != nil {
		return err
	}
	certified := map[string]bool{}
	for _, c := range certs {
		certified[c.Digest] = c.Status == store.Certified
	}
	apps, err := t.Store.ListApplications(ctx)
	if err != nil {
		return err
	}
	byID, byKey := map[string][]Workload{}, map[string]Workload{}
	for i, c := range running {
		w := Workload{Digest: c.Image, Node: nodes[i], Drifted: drifted[nodes[i]+"/"+c.ID]}
		if t.Region != nil {
			w.Region = t.Region(nodes[i])
		}
		if certified[c.Image] {
			w.Certified = []string{t.Policy}
		}
		if img, ok := images[c.Image]; ok {
			if a := store.OwnerOf(apps, img.Repository, img.Labels); a != nil {
				w.Application = a.Name
			}
		}
		if id, err := t.Template.ID(t.TrustDomain, identityWorkload(nodes[i], c)); err == nil {
			w.ID = id.String()
			byID[w.ID] = append(byID[w.ID], w)
		} // else the template cannot name it: only an issued identity can
		byKey[nodes[i]+"/"+c.ID] = w
	}
	t.mu.Lock()
	t.byID, t.byKey, t.drifted, t.lastDrift, t.images = byID, byKey, drifted, last, images
	t.mu.Unlock()
	return nil
}

// identityWorkload is what the identity template names a container by:
// its pod's namespace (else the containerd namespace), pod, container.
func identityWorkload(node string, c agentproto.Container) identity.Workload {
	ns := c.Labels[agentproto.LabelPodNamespace]
	if ns == "" {
		ns = c.Namespace
	}
	app := c.Labels["app.kubernetes.io/name"]
	if app == "" {
		app = c.Labels["app"]
	}
	return identity.Workload{Node: node, Container: c.ID, Image: c.Image, Namespace: ns,
		ServiceAccount: c.Labels["io.kubernetes.pod.serviceaccount"], Pod: c.Labels[agentproto.LabelPodName],
		App: app, Labels: c.Labels}
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
