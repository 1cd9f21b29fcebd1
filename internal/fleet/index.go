package fleet

import (
	"cmp"
	"context"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
)

// Workload is a running container as its node's agent last reported it,
// with what the server knows of its image.
type Workload struct {
	Node          string    `json:"node"`
	Container     string    `json:"container"`
	Namespace     string    `json:"namespace"` // containerd namespace ("k8s.io" under a kubelet)
	Image         string    `json:"image"`     // manifest digest
	Pod           string    `json:"pod,omitempty"`
	PodNamespace  string    `json:"podNamespace,omitempty"`
	PodUID        string    `json:"podUID,omitempty"`
	ContainerName string    `json:"containerName,omitempty"`
	Started       time.Time `json:"started,omitzero"`
	// From the image: its repository, owner application (with its
	// lifecycle) and certification status; empty until matched.
	Repository    string `json:"repository,omitempty"`
	Application   string `json:"application,omitempty"`
	EndOfLife     bool   `json:"endOfLife,omitempty"`
	Certification string `json:"certification,omitempty"`
	// Drifted is when the agent last reported drift in this container.
	Drifted time.Time `json:"drifted,omitzero"`
	// Allowlist is where the agent's allowlist for it came from; Ran what
	// ran in it (path, content digest, execs, first and last), as its last
	// heartbeat said (agentproto.Container).
	Allowlist  string           `json:"allowlist,omitempty"`
	Ran        []agentproto.Ran `json:"ran,omitempty"`
	RanDropped uint64           `json:"ranDropped,omitempty"`
}

// Node is a node as its last heartbeat described it.
type Node struct {
	Name          string    `json:"name"`
	Kernel        string    `json:"kernel,omitempty"`
	Region        string    `json:"region,omitempty"`
	Mode          string    `json:"mode"`
	State         string    `json:"state"`
	Reason        string    `json:"reason,omitempty"`
	LastHeartbeat time.Time `json:"lastHeartbeat"`
	Containers    int       `json:"containers"`
	Packages      int       `json:"packages"`
	// Advisories is how many advisories affect the node's own packages.
	Advisories int `json:"advisories"`
}

// ImageFacts is what the server knows of a running digest.
type ImageFacts struct {
	Repository    string
	Application   string
	EndOfLife     bool
	Certification string
	// Advisories are every id of every finding of the image's inventory
	// (finding ids, aliases and advisory record ids).
	Advisories []string
}

// Describer looks up what the index files workloads and hosts under; the
// server's implementation reads the store and matches against the
// advisory database.
type Describer interface {
	Image(ctx context.Context, digest string) (ImageFacts, error)
	Host(ctx context.Context, distro *agentproto.Distro, pkgs []agentproto.Package) (advisories []string, err error)
}

type node struct {
	info      Node
	distro    *agentproto.Distro
	pkgs      []agentproto.Package
	pkgsHash  uint64
	workloads []*Workload
	advs      []string // of the host packages
}

type image struct {
	facts     ImageFacts
	known     bool
	workloads map[string]*Workload // by node/container
}

// Index is the running inventory. Its methods are safe for concurrent use.
type Index struct {
	d   Describer
	log *slog.Logger

	mu         sync.RWMutex
	nodes      map[string]*node
	images     map[string]*image
	byAdvisory map[string]map[string]struct{} // advisory -> running digests
	hostsBy    map[string]map[string]struct{} // advisory -> nodes
	dirtyImgs  map[string]bool
	dirtyNodes map[string]bool
	drifts     map[string]time.Time // node/container -> last drift
	wake       chan struct{}
	// arrivals are the revoked digests of which the index learned a
	// workload it did not list before (revoked.go); arrived is signalled.
	arrivals map[string]struct{}
	arrived  chan struct{}
}

// New returns an empty index that describes images and hosts with d; log
// nil is slog.Default().
func New(d Describer, log *slog.Logger) *Index {
	if log == nil {
		log = slog.Default()
	}
	return &Index{d: d, log: log, nodes: map[string]*node{}, images: map[string]*image{},
		byAdvisory: map[string]map[string]struct{}{}, hostsBy: map[string]map[string]struct{}{},
		dirtyImgs: map[string]bool{}, dirtyNodes: map[string]bool{}, drifts: map[string]time.Time{},
		wake: make(chan struct{}, 1), arrivals: map[string]struct{}{}, arrived: make(chan struct{}, 1)}
}

func wkey(node, container string) string { return node + "/" + container }

// Observe replaces what the index knows of hb's node with hb, received at
// at. New digests and changed host packages are queued for Run; a
// workload the node did not list before, of a digest known revoked, is
// an arrival (RevokedArrivals).
func (x *Index) Observe(hb agentproto.Heartbeat, at time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := x.nodes[hb.Node]
	if n == nil {
		n = &node{}
		x.nodes[hb.Node] = n
	}
	old := n.workloads
	listed := make(map[string]string, len(old)) // container -> digest
	for _, w := range old {
		listed[w.Container] = w.Image
		if img := x.images[w.Image]; img != nil {
			delete(img.workloads, wkey(w.Node, w.Container))
		}
	}
	n.workloads = nil
	n.info = Node{Name: hb.Node, Kernel: hb.Kernel, Region: hb.Region, Mode: hb.Mode, State: hb.State, Reason: hb.Reason,
		LastHeartbeat: at.UTC(), Containers: len(hb.Containers), Packages: len(hb.Packages), Advisories: len(n.advs)}
	for _, c := range hb.Containers {
		w := &Workload{Node: hb.Node, Container: c.ID, Namespace: c.Namespace, Image: c.Image, Started: c.Started,
			Pod: c.Labels[agentproto.LabelPodName], PodNamespace: c.Labels[agentproto.LabelPodNamespace],
			PodUID: c.Labels[agentproto.LabelPodUID], ContainerName: c.Labels[agentproto.LabelContainer],
			Allowlist: c.Allowlist, Ran: c.Ran, RanDropped: c.RanDropped}
		n.workloads = append(n.workloads, w)
		if c.Image == "" {
			continue
		}
		img := x.images[c.Image]
		if img == nil {
			img = &image{workloads: map[string]*Workload{}}
			x.images[c.Image] = img
			x.dirtyImgs[c.Image] = true
		}
		img.workloads[wkey(w.Node, w.Container)] = w
		if d, ok := listed[c.ID]; (!ok || d != c.Image) && img.facts.Certification == revoked {
			x.arrive(c.Image)
		}
	}
	running := map[string]bool{}
	for _, w := range n.workloads {
		running[w.Container] = true
	}
	for _, w := range old {
		if img := x.images[w.Image]; img != nil && len(img.workloads) == 0 {
			x.dropImage(w.Image)
		}
		if !running[w.Container] {
			delete(x.drifts, wkey(w.Node, w.Container))
		}
	}
	if h := hashPackages(hb.Distro, hb.Packages); h != n.pkgsHash {
		n.distro, n.pkgs, n.pkgsHash = hb.Distro, hb.Packages, h
		x.dirtyNodes[hb.Node] = true
	}
	x.poke()
}

// dropImage forgets a digest nothing runs any more. Called with mu held.
func (x *Index) dropImage(digest string) {
	img := x.images[digest]
	for _, a := range img.facts.Advisories {
		if set := x.byAdvisory[a]; set != nil {
			delete(set, digest)
			if len(set) == 0 {
				delete(x.byAdvisory, a)
			}
		}
	}
	delete(x.images, digest)
	delete(x.dirtyImgs, digest)
}

// hashPackages is 0 for no host inventory.
func hashPackages(d *agentproto.Distro, pkgs []agentproto.Package) uint64 {
	if d == nil && len(pkgs) == 0 {
		return 0
	}
	h := fnv.New64a()
	if d != nil {
		h.Write([]byte(d.ID + "\x00" + d.VersionID + "\x00"))
	}
	for _, p := range pkgs {
		h.Write([]byte(p.Type + "\x00" + p.Name + "\x00" + p.Version + "\x00" + p.Source + "\x00" + p.SourceVersion + "\x01"))
	}
	return h.Sum64()
}

func (x *Index) poke() {
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// Rematch queues every running digest and every node's packages for
// matching again: the advisory database changed.
func (x *Index) Rematch() {
	x.mu.Lock()
	for d := range x.images {
		x.dirtyImgs[d] = true
	}
	for name, n := range x.nodes {
		if len(n.pkgs) > 0 {
			x.dirtyNodes[name] = true
		}
	}
	x.mu.Unlock()
	x.poke()
}

// Refresh queues digest for describing again (its certification changed).
func (x *Index) Refresh(digest string) {
	x.mu.Lock()
	if x.images[digest] != nil {
		x.dirtyImgs[digest] = true
	}
	x.mu.Unlock()
	x.poke()
}

// SetCertification records digest's new certification status at once
// (a revocation), before Run describes it again.
func (x *Index) SetCertification(digest, status string) {
	x.mu.Lock()
	if img := x.images[digest]; img != nil {
		img.facts.Certification = status
	}
	x.mu.Unlock()
}

// Drifted records that the agent of node reported drift in container at
// at.
func (x *Index) Drifted(node, container string, at time.Time) {
	x.mu.Lock()
	k := wkey(node, container)
	if at.After(x.drifts[k]) {
		x.drifts[k] = at.UTC()
	}
	x.mu.Unlock()
}

// Pending is how many digests and nodes wait to be matched.
func (x *Index) Pending() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.dirtyImgs) + len(x.dirtyNodes)
}

// Run describes queued digests and nodes until ctx is done. A failed
// description is retried after retry (a second when zero).
func (x *Index) Run(ctx context.Context) error {
	retry := time.Second
	for {
		failed := x.describeQueued(ctx)
		wait := time.Duration(0)
		if failed {
			wait = retry
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-x.wake:
		}
	}
}

// describeQueued describes what is queued now; it reports whether
// something failed (and stays queued).
func (x *Index) describeQueued(ctx context.Context) (failed bool) {
	x.mu.Lock()
	digests := make([]string, 0, len(x.dirtyImgs))
	for d := range x.dirtyImgs {
		digests = append(digests, d)
	}
	type hostJob struct {
		name   string
		distro *agentproto.Distro
		pkgs   []agentproto.Package
		hash   uint64
	}
	var hosts []hostJob
	for name := range x.dirtyNodes {
		if n := x.nodes[name]; n != nil {
			hosts = append(hosts, hostJob{name, n.distro, n.pkgs, n.pkgsHash})
		}
	}
	x.mu.Unlock()
	for _, d := range digests {
		if ctx.Err() != nil {
			return false
		}
		f, err := x.d.Image(ctx, d)
		if err != nil {
			x.log.Warn("describing a running image", "digest", d, "err", err)
			failed = true
			continue
		}
		x.fileImage(d, f)
	}
	for _, h := range hosts {
		if ctx.Err() != nil {
			return false
		}
		advs, err := x.d.Host(ctx, h.distro, h.pkgs)
		if err != nil {
			x.log.Warn("matching a node's packages", "node", h.name, "err", err)
			failed = true
			continue
		}
		x.fileHost(h.name, h.hash, advs)
	}
	return failed
}

func (x *Index) fileImage(digest string, f ImageFacts) {
	x.mu.Lock()
	defer x.mu.Unlock()
	img := x.images[digest]
	if img == nil {
		return // stopped running meanwhile
	}
	for _, a := range img.facts.Advisories {
		delete(x.byAdvisory[a], digest)
		if len(x.byAdvisory[a]) == 0 {
			delete(x.byAdvisory, a)
		}
	}
	f.Advisories = compact(f.Advisories)
	if f.Certification == revoked && img.facts.Certification != revoked {
		x.arrive(digest) // running, and found revoked by this description
	}
	img.facts, img.known = f, true
	for _, a := range f.Advisories {
		set := x.byAdvisory[a]
		if set == nil {
			set = map[string]struct{}{}
			x.byAdvisory[a] = set
		}
		set[digest] = struct{}{}
	}
	delete(x.dirtyImgs, digest)
}

func (x *Index) fileHost(name string, hash uint64, advs []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := x.nodes[name]
	if n == nil || n.pkgsHash != hash {
		return // gone, or its packages changed again: still queued
	}
	for _, a := range n.advs {
		delete(x.hostsBy[a], name)
		if len(x.hostsBy[a]) == 0 {
			delete(x.hostsBy, a)
		}
	}
	n.advs = compact(advs)
	n.info.Advisories = len(n.advs)
	for _, a := range n.advs {
		set := x.hostsBy[a]
		if set == nil {
			set = map[string]struct{}{}
			x.hostsBy[a] = set
		}
		set[name] = struct{}{}
	}
	delete(x.dirtyNodes, name)
}

func compact(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// view is w with its image's facts and drift time. Called with mu held.
func (x *Index) view(w *Workload) Workload {
	v := *w
	if img := x.images[w.Image]; img != nil && img.known {
		v.Repository, v.Application, v.EndOfLife, v.Certification =
			img.facts.Repository, img.facts.Application, img.facts.EndOfLife, img.facts.Certification
	}
	v.Drifted = x.drifts[wkey(w.Node, w.Container)]
	return v
}

func sortWorkloads(ws []Workload) {
	slices.SortFunc(ws, func(a, b Workload) int {
		return cmp.Or(strings.Compare(a.Node, b.Node), strings.Compare(a.PodNamespace, b.PodNamespace),
			strings.Compare(a.Pod, b.Pod), strings.Compare(a.Container, b.Container))
	})
}
