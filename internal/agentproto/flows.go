package agentproto

import (
	"net/netip"
	"strconv"
	"time"
)

// FlowBatch is the body of POST /api/v1/governance/flows: outbound
// connections an agent saw on its node, aggregated per container and
// destination. The server resolves each container's service and region
// itself.
type FlowBatch struct {
	Node  string       `json:"node"`
	Flows []FlowReport `json:"flows"`
}

// FlowReport is one container's connections to one destination.
type FlowReport struct {
	Container   string    `json:"container"`
	Image       string    `json:"image"`       // manifest digest of its image
	Destination string    `json:"destination"` // ip:port
	Count       int64     `json:"count"`       // connections seen
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
}

// MaxFlows bounds a batch.
const MaxFlows = 5000

// Validate reports the first thing wrong with b.
func (b FlowBatch) Validate() error {
	if b.Node == "" || len(b.Node) > 253 {
		return invalid("node: want 1-253 characters")
	}
	if len(b.Flows) > MaxFlows {
		return invalid("%d flows, at most %d", len(b.Flows), MaxFlows)
	}
	for i, f := range b.Flows {
		if f.Container == "" || len(f.Container) > 128 || len(f.Image) > 200 {
			return invalid("flow %d: container 1-128 characters, image at most 200", i)
		}
		if _, err := netip.ParseAddrPort(f.Destination); err != nil {
			d := f.Destination
			if len(d) > 60 {
				d = d[:60] + "..."
			}
			return invalid("flow %d: destination %s: want ip:port", i, strconv.Quote(d))
		}
		if f.Count < 1 || f.Count > 1<<40 {
			return invalid("flow %d: count %d: want 1..2^40", i, f.Count)
		}
	}
	return nil
}
