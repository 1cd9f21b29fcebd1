package identity

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Record is one issuance or refusal, for the audit log: what forensics
// needs (workload, node, digest, the ID, and why not).
type Record struct {
	Kind      string // "x509-svid" or "jwt-svid"
	Workload  Workload
	ID        string    // the SPIFFE ID ("" when the template could not name it)
	Serial    string    // X.509 serial (hex), "" for a JWT or a refusal
	Audiences []string  `json:",omitempty"`
	Expiry    time.Time // zero for a refusal
	Refusal   *Refusal  `json:",omitempty"`
}

// Issuer applies the rule and signs: the server's side of issuance. Facts
// come from the server's state; every decision is recorded before the SVID
// is handed out, and a failure to record refuses the issuance.
type Issuer struct {
	Authority *Authority
	Template  *Template
	Facts     func(ctx context.Context, w Workload) (Facts, error)
	Grace     time.Duration // zero: DefaultNodeGrace
	Record    func(ctx context.Context, r Record) error
	Now       func() time.Time // nil: time.Now
	// TEE is the attestation condition of the workload named id: nil when
	// its policy asks for none (trust.TEEPolicy.Facts). Nil asks none of
	// any workload.
	TEE func(id spiffeid.ID, w Workload) *TEEFacts
	// ServiceAccounts resolves a pod's service account from the cluster;
	// nil (no cluster) keeps what the agent reported.
	ServiceAccounts ServiceAccounts
}

// ServiceAccounts reads a pod's service account from the Kubernetes API
// (kube.ServiceAccounts): the pod named ns/pod must have UID uid and be
// bound to node, else it is an error.
type ServiceAccounts interface {
	ServiceAccount(ctx context.Context, node, ns, pod, uid string) (string, error)
}

// LabelPodUID is the CRI label with the pod's UID.
const LabelPodUID = "io.kubernetes.pod.uid"

// resolve fills w's service account from the cluster when there is one:
// a pod's, checked against its UID and node; a container in no pod has
// none. A failure is a refusal (never a guess).
func (i *Issuer) resolve(ctx context.Context, w Workload) (Workload, *Refusal) {
	if i.ServiceAccounts == nil {
		return w, nil
	}
	w.ServiceAccount = ""
	if w.Pod == "" {
		return w, nil
	}
	sa, err := i.ServiceAccounts.ServiceAccount(ctx, w.Node, w.Namespace, w.Pod, w.Labels[LabelPodUID])
	if err != nil {
		return w, &Refusal{Reason: ReasonNoID, Detail: fmt.Sprintf("resolving the service account of pod %s/%s: %v", w.Namespace, w.Pod, err)}
	}
	w.ServiceAccount = sa
	return w, nil
}

// IDOf is the SPIFFE ID w is named by (its service account resolved as
// in issuance).
func (i *Issuer) IDOf(ctx context.Context, w Workload) (spiffeid.ID, error) {
	w, ref := i.resolve(ctx, w)
	if ref != nil {
		return spiffeid.ID{}, ref
	}
	return i.Template.ID(i.Authority.TrustDomain(), w)
}

// decide fills the template and applies the rule; a refusal is recorded
// and returned as *Refusal.
func (i *Issuer) decide(ctx context.Context, kind string, w Workload) (spiffeid.ID, error) {
	w, ref := i.resolve(ctx, w)
	if ref != nil {
		return spiffeid.ID{}, i.refuse(ctx, kind, w, "", ref)
	}
	now := time.Now
	if i.Now != nil {
		now = i.Now
	}
	grace := i.Grace
	if grace <= 0 {
		grace = DefaultNodeGrace
	}
	id, err := i.Template.ID(i.Authority.TrustDomain(), w)
	if err != nil {
		return id, i.refuse(ctx, kind, w, "", &Refusal{Reason: ReasonNoID, Detail: err.Error()})
	}
	f, err := i.Facts(ctx, w)
	if err != nil {
		return id, fmt.Errorf("reading what is known of container %q: %w", w.Container, err)
	}
	if i.TEE != nil {
		f.TEE = i.TEE(id, w)
	}
	if err := Decide(f, now(), grace); errors.As(err, &ref) {
		return id, i.refuse(ctx, kind, w, id.String(), ref)
	}
	return id, nil
}

func (i *Issuer) refuse(ctx context.Context, kind string, w Workload, id string, ref *Refusal) error {
	if err := i.Record(ctx, Record{Kind: kind, Workload: w, ID: id, Refusal: ref}); err != nil {
		return fmt.Errorf("recording a refusal: %w", err)
	}
	return ref
}

// IssueX509 decides and signs an X.509-SVID over pub.
func (i *Issuer) IssueX509(ctx context.Context, w Workload, pub crypto.PublicKey) (X509SVID, error) {
	id, err := i.decide(ctx, "x509-svid", w)
	if err != nil {
		return X509SVID{}, err
	}
	s, err := i.Authority.SignX509(id, pub, 0)
	if err != nil {
		return X509SVID{}, err
	}
	leaf := s.Chain[0]
	if err := i.Record(ctx, Record{Kind: "x509-svid", Workload: w, ID: id.String(), Serial: leaf.SerialNumber.Text(16), Expiry: leaf.NotAfter}); err != nil {
		return X509SVID{}, fmt.Errorf("recording an issuance: %w", err)
	}
	return s, nil
}

// IssueJWT decides and signs a JWT-SVID for audiences.
func (i *Issuer) IssueJWT(ctx context.Context, w Workload, audiences []string) (string, time.Time, error) {
	id, err := i.decide(ctx, "jwt-svid", w)
	if err != nil {
		return "", time.Time{}, err
	}
	tok, exp, err := i.Authority.SignJWT(id, audiences, 0)
	if err != nil {
		return "", time.Time{}, err
	}
	if err := i.Record(ctx, Record{Kind: "jwt-svid", Workload: w, ID: id.String(), Audiences: audiences, Expiry: exp}); err != nil {
		return "", time.Time{}, fmt.Errorf("recording an issuance: %w", err)
	}
	return tok, exp, nil
}
