package secretstore

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/bulwark-sec/bulwark/internal/audit"
)

// ErrUnknown is returned by Release for a secret that does not exist.
var ErrUnknown = errors.New("no such secret")

// Released is a secret released to a workload.
type Released struct {
	Value   Value
	Version int64
	Kind    string
}

// Release gives secret name to the workload with SPIFFE ID id when the
// secret's policy allows it, and audits the release or the refusal (with
// digest, identity, node and region). A refusal is a *Denied with its
// reason. The decision is made from memory; the value is opened once per
// version and kept.
func (s *Service) Release(ctx context.Context, id, name string) (Released, error) {
	w, known := Workload{ID: id}, false
	if s.workloads != nil {
		w, known = s.workloads.Workload(id)
		w.ID = id
	}
	reason := "the server knows no running workload with identity " + id
	return s.release(ctx, "spiffe:"+id, w, known, reason, name)
}

// ContainerWorkloads knows running workloads by node and container: the
// agent asks for the secrets of a container it delivers them to.
type ContainerWorkloads interface {
	Container(node, container string) (Workload, bool)
}

// ReleaseToContainer gives secret name to the node's agent for container
// when the secret's policy allows the container's workload (its identity,
// digest, drift, region, grants as the server knows them); audited as a
// release to that workload by actor (the agent's token).
func (s *Service) ReleaseToContainer(ctx context.Context, actor, node, container, name string) (Released, error) {
	cw, _ := s.workloads.(ContainerWorkloads)
	w, known := Workload{Node: node}, false
	if cw != nil {
		w, known = cw.Container(node, container)
	}
	reason := "the server knows no running container " + container + " on node " + node
	if known && w.ID == "" {
		known, reason = false, "container "+container+" has no identity (the SPIFFE ID template cannot name it)"
	}
	return s.release(ctx, actor, w, known, reason, name)
}

func (s *Service) release(ctx context.Context, actor string, w Workload, known bool, unknown, name string) (Released, error) {
	s.mu.RLock()
	e := s.secrets[name]
	s.mu.RUnlock()
	var err error
	switch {
	case e == nil:
		err = ErrUnknown
	case !known:
		err = &Denied{Secret: name, Reason: unknown}
	default:
		err = decide(name, e.policy, e.regions, e.classes, w, s.granted)
	}
	var out Released
	if err == nil {
		out, err = s.value(ctx, e)
	}
	if aerr := s.audit(ctx, actor, name, w, out.Version, err); aerr != nil {
		return Released{}, aerr
	}
	if err == nil {
		s.recipients.note(name, w)
	}
	return out, err
}

func (s *Service) granted(app, class string) bool {
	return s.grants != nil && s.grants.Granted(app, class)
}

// value returns e's current value, opening and keeping it on first use.
func (s *Service) value(ctx context.Context, e *entry) (Released, error) {
	s.mu.RLock()
	v, version := e.value, e.version
	s.mu.RUnlock()
	if v != nil && version == e.meta.Current {
		return Released{Value: *v, Version: version, Kind: e.meta.Kind}, nil
	}
	row, err := s.st.VaultVersion(ctx, e.meta.Name, e.meta.Current)
	if err != nil {
		return Released{}, err
	}
	val, err := s.open(row)
	if err != nil {
		return Released{}, err
	}
	s.mu.Lock()
	e.value, e.version = &val, row.Version
	s.mu.Unlock()
	return Released{Value: val, Version: row.Version, Kind: e.meta.Kind}, nil
}

// audit records a release (err nil) or a refusal: who, what version, the
// workload's digest, node and region, and the reason. Never the value.
func (s *Service) audit(ctx context.Context, actor, name string, w Workload, version int64, err error) error {
	detail := map[string]any{"identity": w.ID, "digest": w.Digest, "node": w.Node, "region": w.Region}
	action := "secret.release"
	if err != nil {
		action = "secret.refuse"
		var d *Denied
		switch {
		case errors.As(err, &d):
			detail["reason"] = d.Reason
		case errors.Is(err, ErrUnknown):
			detail["reason"] = ErrUnknown.Error()
		default:
			detail["reason"] = "error opening the secret"
		}
	} else {
		detail["version"] = version
	}
	after, _ := json.Marshal(detail)
	return s.releases.Append(ctx, audit.Entry{Actor: actor, Action: action, Object: "secret:" + name, After: after})
}
