package fleet

import (
	"slices"
	"strings"
)

// Exposure answers "where does advisory X run": the running workloads whose
// image an advisory affects, the nodes they run on, and the nodes whose own
// packages it affects.
type Exposure struct {
	Advisory  string     `json:"advisory"`
	Digests   []string   `json:"digests"`   // running digests it affects
	Workloads []Workload `json:"workloads"` // running them, by node, namespace, pod
	Nodes     []string   `json:"nodes"`     // running an affected digest
	Hosts     []Node     `json:"hosts"`     // whose own packages it affects
	// Pending is how many running digests and nodes are not matched yet
	// (just reported, or an advisory import is being applied): the answer
	// may miss them.
	Pending int `json:"pending"`
}

// Running answers for advisory id (a finding id, an alias or an advisory
// record id) from memory.
func (x *Index) Running(id string) Exposure {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e := Exposure{Advisory: id, Digests: []string{}, Workloads: []Workload{}, Nodes: []string{}, Hosts: []Node{},
		Pending: len(x.dirtyImgs) + len(x.dirtyNodes)}
	n := 0
	for d := range x.byAdvisory[id] {
		n += len(x.images[d].workloads)
	}
	e.Workloads = make([]Workload, 0, n)
	nodes := map[string]bool{}
	for d := range x.byAdvisory[id] {
		e.Digests = append(e.Digests, d)
		for _, w := range x.images[d].workloads {
			e.Workloads = append(e.Workloads, x.view(w))
			nodes[w.Node] = true
		}
	}
	for n := range nodes {
		e.Nodes = append(e.Nodes, n)
	}
	for n := range x.hostsBy[id] {
		e.Hosts = append(e.Hosts, x.nodes[n].info)
	}
	slices.Sort(e.Digests)
	slices.Sort(e.Nodes)
	sortWorkloads(e.Workloads)
	slices.SortFunc(e.Hosts, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	return e
}

// Filter selects workloads; empty fields select all.
type Filter struct {
	Node         string
	Image        string // manifest digest
	PodNamespace string
	Application  string
	// EndOfLife selects only the workloads of end-of-life applications:
	// the violations an end-of-life marking leaves running.
	EndOfLife bool
}

// Workloads lists the running workloads f selects, by node, namespace,
// pod.
func (x *Index) Workloads(f Filter) []Workload {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := []Workload{}
	add := func(w *Workload) {
		v := x.view(w)
		if f.Node != "" && v.Node != f.Node || f.PodNamespace != "" && v.PodNamespace != f.PodNamespace ||
			f.Application != "" && v.Application != f.Application || f.EndOfLife && !v.EndOfLife ||
			f.Image != "" && v.Image != f.Image {
			return
		}
		out = append(out, v)
	}
	switch {
	case f.Image != "":
		if img := x.images[f.Image]; img != nil {
			for _, w := range img.workloads {
				add(w)
			}
		}
	case f.Node != "":
		if n := x.nodes[f.Node]; n != nil {
			for _, w := range n.workloads {
				add(w)
			}
		}
	default:
		for _, n := range x.nodes {
			for _, w := range n.workloads {
				add(w)
			}
		}
	}
	sortWorkloads(out)
	return out
}

// Workload is the running workload node/container, if the index has it.
func (x *Index) Workload(node, container string) (Workload, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if n := x.nodes[node]; n != nil {
		for _, w := range n.workloads {
			if w.Container == container {
				return x.view(w), true
			}
		}
	}
	return Workload{}, false
}

// Nodes lists the nodes by name.
func (x *Index) Nodes() []Node {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]Node, 0, len(x.nodes))
	for _, n := range x.nodes {
		out = append(out, n.info)
	}
	slices.SortFunc(out, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Node is the node called name, if the index has it.
func (x *Index) Node(name string) (Node, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if n := x.nodes[name]; n != nil {
		return n.info, true
	}
	return Node{}, false
}
