package identity

import (
	"fmt"
	"time"
)

// Reasons an identity is refused or withdrawn, as the audit log and
// `bulwark identity why` name them.
const (
	ReasonUncertified = "uncertified"  // the image digest has no certification
	ReasonRevoked     = "revoked"      // its certification was revoked
	ReasonDrifted     = "drifted"      // the agent saw drift in this container
	ReasonNodeSilent  = "node-silent"  // the node's agent heartbeat is older than the grace
	ReasonNotWorkload = "not-workload" // the caller is no watched container (a host process)
	ReasonNoID        = "no-id"        // the SPIFFE ID template cannot name it
	// ReasonUnattested: the workload's policy asks for a TEE and no
	// verified confidential instance of the required kind (and region)
	// vouches for it now.
	ReasonUnattested = "unattested"
)

// Refusal is a decision not to issue (or to withdraw) an identity. It is
// a decision, not a failure: the Workload API answers PermissionDenied.
type Refusal struct {
	Reason string
	Detail string
}

func (r *Refusal) Error() string {
	if r.Detail == "" {
		return "no identity: " + r.Reason
	}
	return fmt.Sprintf("no identity: %s: %s", r.Reason, r.Detail)
}

// Facts are what the server knows of a workload when it decides.
type Facts struct {
	Image string
	// Certified: a certification exists for Image; Revoked: it was
	// revoked (RevokedReason says why).
	Certified, Revoked bool
	RevokedReason      string
	// Drifted: a drift event of this container is recorded (DriftDetail
	// names it).
	Drifted     bool
	DriftDetail string
	// Heartbeat is the node's last heartbeat; zero is never.
	Heartbeat time.Time
	// TEE is the attestation condition, when the workload's policy asks
	// for one (Issuer.TEE fills it); nil asks for none.
	TEE *TEEFacts
}

// TEEFacts is the attestation condition of a workload whose policy asks
// for a TEE: Holds while its confidential instances are verified, of an
// allowed kind and in an allowed region; Detail says why not (or which
// instance vouches).
type TEEFacts struct {
	Holds  bool
	Detail string
}

// DefaultNodeGrace is how long a node's workloads are renewed after its
// agent's last heartbeat (a few missed 30 s heartbeats).
const DefaultNodeGrace = 2 * time.Minute

// Decide is the rule: an identity is issued or renewed only while the
// image digest is certified and not revoked, the container has not
// drifted, its node's agent was heard from within grace and, where its
// policy asks for a TEE, its attestation holds. It returns nil or a
// *Refusal.
func Decide(f Facts, now time.Time, grace time.Duration) error {
	switch {
	case f.Drifted:
		return &Refusal{Reason: ReasonDrifted, Detail: f.DriftDetail}
	case f.Revoked:
		return &Refusal{Reason: ReasonRevoked, Detail: f.RevokedReason}
	case !f.Certified:
		return &Refusal{Reason: ReasonUncertified, Detail: "image " + f.Image + " has no certification"}
	case f.Heartbeat.IsZero() || now.Sub(f.Heartbeat) > grace:
		return &Refusal{Reason: ReasonNodeSilent, Detail: fmt.Sprintf("last heartbeat %s, grace %s", stamp(f.Heartbeat), grace)}
	case f.TEE != nil && !f.TEE.Holds:
		return &Refusal{Reason: ReasonUnattested, Detail: f.TEE.Detail}
	}
	return nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
