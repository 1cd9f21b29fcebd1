package fleet

import "slices"

// revoked is the certification status of a revoked digest (store.Revoked;
// the index does not import the store).
const revoked = "revoked"

// A revocation is answered against the workloads the index lists when
// the revocation's response runs. A workload of the revoked digest that
// the index learns of later (its container restarted, its node's
// heartbeat late, the server restarted) would be answered by nobody: the
// index notes its digest as an arrival, and the server queues the
// revocation's response again for it (internal/server, lateRevocations).
//
// An arrival is a digest, not a workload: a thousand new containers of
// one revoked digest are one arrival, answered by one response job that
// answers every workload of the digest (what was answered before is not
// answered twice: responses are recorded under keys).

// arrive notes digest as an arrival. Called with mu held.
func (x *Index) arrive(digest string) {
	x.arrivals[digest] = struct{}{}
	select {
	case x.arrived <- struct{}{}:
	default:
	}
}

// RevokedArrived is signalled when there are arrivals to take.
func (x *Index) RevokedArrived() <-chan struct{} { return x.arrived }

// RevokedArrivals returns, and forgets, the revoked digests of which the
// index learned a workload it did not list before: a heartbeat brought a
// container of a digest the index knows revoked, or the first description
// of a running digest (or the one after its revocation) found it revoked.
func (x *Index) RevokedArrivals() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]string, 0, len(x.arrivals))
	for d := range x.arrivals {
		out = append(out, d)
	}
	clear(x.arrivals)
	slices.Sort(out)
	return out
}
