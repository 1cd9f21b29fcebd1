package agent

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/workloadapi"
)

// identityFlags are the flags of the SPIFFE Workload API the agent serves.
type identityFlags struct {
	socket       *string
	retryRefused *time.Duration
}

func addIdentityFlags(fs *pflag.FlagSet) *identityFlags {
	return &identityFlags{
		socket:       fs.String("workload-api-socket", "", "serve the SPIFFE Workload API on this unix socket (needs --server); workloads get SVIDs while their image is certified and they have not drifted"),
		retryRefused: fs.Duration("identity-retry-refused", 5*time.Minute, "how often a refused identity is asked again without a change pushed by the server"),
	}
}

// identityNode is the node's identity service: the Manager (SVIDs from
// the server, withdrawn on drift) and the Workload API over it.
type identityNode struct {
	socket string
	m      *workloadapi.Manager
	log    *slog.Logger
	agent  *Agent // set once the agent is made
	node   string
	sender *Sender
}

// open checks the flags; nil when no socket is asked for.
func (f *identityFlags) open(o *outputs, log *slog.Logger) (*identityNode, error) {
	if *f.socket == "" {
		return nil, nil
	}
	if o.sender == nil {
		return nil, errors.New("--workload-api-socket needs --server: identities come from the server")
	}
	n := &identityNode{socket: *f.socket, log: log.With("component", "identity"), node: o.sender.cfg.Node, sender: o.sender}
	iss := &workloadapi.ServerIssuer{URL: o.sender.cfg.URL, Token: o.sender.cfg.Token, Tokens: o.sender.cfg.Tokens, Node: n.node}
	n.m = workloadapi.NewManager(workloadapi.ManagerConfig{Issuer: iss, Workloads: n.workloads, RetryRefused: *f.retryRefused, Log: n.log})
	return n, nil
}

// report withdraws the identity of a container that drifted (refused or
// reported exec alike) at once, then passes the event on.
func (n *identityNode) report(next func(Event)) func(Event) {
	if n == nil {
		return next
	}
	return func(e Event) {
		n.m.Withdraw(e.Container, identity.ReasonDrifted, string(e.Verdict)+" exec of "+e.Path)
		next(e)
	}
}

// workloads lists the watched containers as identity workloads.
func (n *identityNode) workloads() []identity.Workload {
	if n.agent == nil {
		return nil
	}
	n.agent.mu.RLock()
	defer n.agent.mu.RUnlock()
	out := make([]identity.Workload, 0, len(n.agent.containers))
	for _, c := range n.agent.containers {
		out = append(out, n.workloadOf(c))
	}
	return out
}

// workloadOf names a container as the runtime describes it: the pod's
// namespace and name from the kubelet's CRI labels, else the containerd
// namespace.
func (n *identityNode) workloadOf(c *container) identity.Workload {
	w := identity.Workload{Node: n.node, Container: c.id, Image: c.image, Namespace: c.namespace}
	if ns := c.labels[agentproto.LabelPodNamespace]; ns != "" {
		w.Namespace = ns
	}
	w.Pod = c.labels[agentproto.LabelPodName]
	if uid := c.labels[agentproto.LabelPodUID]; uid != "" {
		// The server checks the pod it resolves a service account from
		// is this one (identity.Issuer.ServiceAccounts).
		w.Labels = map[string]string{identity.LabelPodUID: uid}
	}
	return w
}

// resolve attributes a Workload API caller by its pid: its cgroups name a
// watched container, or it gets nothing.
func (n *identityNode) resolve(pid int) (identity.Workload, bool) {
	c := n.agent.attribute(pid)
	if c == nil {
		return identity.Workload{}, false
	}
	return n.workloadOf(c), true
}

// run serves the Workload API and keeps the identities until ctx ends;
// it starts once the agent watches the containers that already run.
func (n *identityNode) run(ctx context.Context) error {
	select {
	case <-n.agent.Ready():
	case <-ctx.Done():
		return nil
	}
	srv := workloadapi.NewServer(n.m, n.resolve, n.log)
	done := make(chan error, 1)
	go func() {
		// The server renews a node's workloads only while it hears the
		// node's heartbeats: ask once the first one went through.
		for n.sender.Stats().LastHeartbeat.IsZero() {
			select {
			case <-ctx.Done():
				done <- nil
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		done <- n.m.Run(ctx)
	}()
	n.log.Info("serving the SPIFFE Workload API", "socket", n.socket)
	err := srv.Serve(ctx, n.socket)
	if err != nil {
		n.log.Error("serving the Workload API", "error", err)
	}
	if merr := <-done; err == nil {
		err = merr
	}
	return err
}

// runWithIdentity runs the agent, its outputs and, when asked, its
// identity service; a failing Workload API does not stop enforcement.
func runWithIdentity(ctx context.Context, a *Agent, o *outputs, n *identityNode, log *slog.Logger) error {
	if n == nil {
		return runWithOutputs(ctx, a, o, log)
	}
	n.agent = a
	ictx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.run(ictx) }()
	err := runWithOutputs(ctx, a, o, log)
	cancel()
	<-done
	return err
}
