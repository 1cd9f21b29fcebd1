package governance

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/notify"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Store is what the Service needs from the store.
type Store interface {
	DataFlows(ctx context.Context) ([]store.DataFlow, error)
	NewGovernanceAlert(ctx context.Context, key string) (bool, error)
	notify.Publisher
}

// Auditor commits a change with its audit entries (api.Auditor).
type Auditor interface {
	Do(ctx context.Context, fn func(tx *store.Store) ([]audit.Entry, error)) error
}

// Service is the server's governance: it records observed flows,
// resolving each workload's service and region from the server's own
// knowledge, alerts on violations (audited, and a governance.violation
// notification, once per violation), and builds reports.
type Service struct {
	// Cat is the catalogue (nil: an empty one), unless Live is set.
	Cat     *Catalogue
	Live    *Live
	Store   Store
	Auditor Auditor
	// Owner names the application owning a running container's image
	// ("" none): the server's view, never the agent's or the workload's.
	Owner func(ctx context.Context, digest string) (string, error)
	// ImageOf is the image digest the server knows container on node to
	// run (its agent's last heartbeat); when it knows, the batch's own
	// image field is not used.
	ImageOf func(node, container string) (digest string, ok bool)
	// Secrets lists the secret store's secrets with their classes.
	Secrets func() []SecretClasses
	// Region of a node ("" unknown): the server's resolution (attested,
	// configured, reported); nil is the catalogue's nodes.
	Region func(node string) string
	Now    func() time.Time
}

var empty, _ = Parse(nil)

// Catalogue is the catalogue in force.
func (s *Service) Catalogue() *Catalogue {
	if s.Live != nil {
		return s.Live.Catalogue()
	}
	if s.Cat == nil {
		return empty
	}
	return s.Cat
}

// FlowBatch is an agent's report of its node's connections (the wire
// type lives in agentproto, which the agent links).
type FlowBatch = agentproto.FlowBatch

// FlowReport is one container's connections to one destination.
type FlowReport = agentproto.FlowReport

// Recorded is the answer to a batch.
type Recorded struct {
	Flows      int         `json:"flows"`
	Matched    int         `json:"matched"` // to a catalogued data store
	Violations []Violation `json:"violations"`
	Alerts     int         `json:"alerts"` // new violations notified
}

// Record stores b's flows with the service and region the server knows,
// audits the batch, and alerts on each violation not alerted before.
func (s *Service) Record(ctx context.Context, actor string, b FlowBatch) (Recorded, error) {
	if err := b.Validate(); err != nil {
		return Recorded{}, invalid("%v", err)
	}
	cat := s.Catalogue()
	region := cat.NodeRegion(b.Node)
	if s.Region != nil {
		region = s.Region(b.Node)
	}
	now := s.now()
	out := Recorded{Flows: len(b.Flows), Violations: []Violation{}}
	rows := make([]store.DataFlow, 0, len(b.Flows))
	owners := map[string]string{}
	for _, fr := range b.Flows {
		if s.ImageOf != nil {
			if img, ok := s.ImageOf(b.Node, fr.Container); ok {
				fr.Image = img
			}
		}
		svc, ok := owners[fr.Image]
		if !ok && fr.Image != "" && s.Owner != nil {
			var err error
			if svc, err = s.Owner(ctx, fr.Image); err != nil {
				return Recorded{}, fmt.Errorf("resolving the owner of %s: %w", fr.Image, err)
			}
			owners[fr.Image] = svc
		}
		first, last := fr.First, fr.Last
		if last.IsZero() || last.After(now) {
			last = now
		}
		if first.IsZero() || first.After(last) {
			first = last
		}
		f := Flow{Service: svc, Node: b.Node, Container: fr.Container, Image: fr.Image, Region: region,
			Destination: fr.Destination, Count: fr.Count, First: first, Last: last}
		out.Violations = append(out.Violations, cat.Check(&f)...)
		if f.Store != "" {
			out.Matched++
		}
		rows = append(rows, store.DataFlow{Node: f.Node, Container: f.Container, Destination: f.Destination, Image: f.Image,
			Service: f.Service, Region: f.Region, Count: f.Count, First: f.First, Last: f.Last})
	}
	summary, _ := json.Marshal(map[string]any{"flows": out.Flows, "matched": out.Matched, "violations": len(out.Violations)})
	err := s.Auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		if err := tx.AddDataFlows(ctx, rows); err != nil {
			return nil, err
		}
		return []audit.Entry{{Actor: actor, Action: "governance.flows", Object: "node:" + b.Node, After: summary}}, nil
	})
	if err != nil {
		return Recorded{}, err
	}
	for _, v := range out.Violations {
		n, err := s.alert(ctx, v)
		if err != nil {
			return out, err
		}
		out.Alerts += n
	}
	return out, nil
}

// alert raises v once: audited as governance.violation and notified.
func (s *Service) alert(ctx context.Context, v Violation) (int, error) {
	fresh, err := s.Store.NewGovernanceAlert(ctx, v.Key())
	if err != nil || !fresh {
		return 0, err
	}
	after, _ := json.Marshal(v)
	err = s.Auditor.Do(ctx, func(*store.Store) ([]audit.Entry, error) {
		return []audit.Entry{{Actor: "bulwark", Action: "governance.violation", Object: "store:" + v.Store, After: after}}, nil
	})
	if err != nil {
		return 0, err
	}
	_, err = notify.Publish(ctx, s.Store, notify.DataAccessViolated(notify.DataAccess{Kind: v.Kind, Service: v.Service,
		Store: v.Store, Class: v.Class, Regulations: v.Regulations, Node: v.Node, Container: v.Container, Region: v.Region,
		Detail: v.Detail, Time: v.Last}))
	return 1, err
}

// Report builds the report for regulation ("" all) over every stored
// flow, the catalogue and the secret store's secrets.
func (s *Service) Report(ctx context.Context, regulation string) (Report, error) {
	rows, err := s.Store.DataFlows(ctx)
	if err != nil {
		return Report{}, err
	}
	flows := make([]Flow, len(rows))
	for i, r := range rows {
		flows[i] = Flow{Service: r.Service, Node: r.Node, Container: r.Container, Image: r.Image, Region: r.Region,
			Destination: r.Destination, Count: r.Count, First: r.First, Last: r.Last}
	}
	var secrets []SecretClasses
	if s.Secrets != nil {
		secrets = s.Secrets()
	}
	return s.Catalogue().Build(flows, secrets, strings.ToLower(regulation), s.now())
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}
