package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/client"
	"golang.org/x/sync/errgroup"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/execmon"
	"github.com/bulwark-sec/bulwark/internal/fanotify"
	"github.com/bulwark-sec/bulwark/internal/netflow"
)

// Config is the agent's validated configuration.
type Config struct {
	Mode Mode
	// Address is containerd's socket.
	Address string
	// Namespaces are the containerd namespaces watched.
	Namespaces []string
	// InventoryDir holds inventories (bulwark SBOM JSON) named
	// "<manifest digest hex>.json"; an image with none, or whose file table
	// lacks content digests, is read from containerd's content store.
	InventoryDir string
	// Workers decide on execs in parallel; zero is GOMAXPROCS.
	Workers int
	Log     *slog.Logger
	// Report receives every drifted exec; nil logs it.
	Report func(Event)
	// ReplaceDrifted replaces a standalone container (one without
	// Kubernetes pod labels) whose exec drifted: recreated from its image
	// on a fresh snapshot (replace.go). Pods are replaced by the server.
	ReplaceDrifted bool
	// Mechanism is how to enforce; "" is auto.
	Mechanism Mechanism
	// AllowDegrade lets the agent run without the mechanism asked for, or
	// with a canary that is not refused, reporting so loudly.
	AllowDegrade bool
	// CanaryDir is where the canary's throwaway filesystem is mounted
	// ("canary" under it); "" is /run/bulwark-agent.
	CanaryDir string
	// CanaryEvery is how often the canary runs after the first; zero is
	// 30 s.
	CanaryEvery time.Duration
	// ExecEvents runs the exec sensor (procevents.go).
	ExecEvents        bool
	ExecEventsDefault bool // ExecEvents not given: on in prevent with fanotify (unheldkill.go)
	// NamespaceModes overrides Mode per namespace (modes.go).
	NamespaceModes map[string]Mode
	// ModeRules: modes, learning windows by pod, workload, label (moderules.go).
	ModeRules ModeRules
	// Learn is the learning window (learn.go); a zero Window is none.
	Learn LearnConfig
	// Node names this node in learned lists.
	Node string
	// Allowlists, when set, answers each image's allowlist from the
	// server's scan; InventoryDir and the content store are then the
	// fallbacks (allowsrv.go). AllowlistCache keeps its answers on disk
	// ("": in memory only).
	Allowlists     AllowlistServer
	AllowlistCache string
	// GateCgroup limits the gate (gate.go) to the processes whose cgroup v2
	// is this directory (relative to the cgroup2 mount; made if missing) or
	// below it, and there holds them whatever their pid namespace (hostPID
	// containers too); GateCgroupAuto finds the kubelet's pods' root
	// (gatescope.go); "" is the whole node, containers in pid namespaces of
	// their own only. For a node another agent also gates (a second
	// containerd's agent, tests): two node-wide gates stop, and continue,
	// each other's containers' first execs.
	GateCgroup string

	adoptDelay delay         // tests: adoption waits before marking (gate.go)
	gateWait   time.Duration // tests: the gate's bound; zero is gateWait
}

// Cache sizes: identities remembered per container and per node.
const (
	verdictsPerContainer = 1 << 14
	digestsPerNode       = 1 << 16
)

// NoEnforcementError says the agent cannot watch execs (fanotify is missing
// or not permitted): the agent refuses to start rather than pretend.
type NoEnforcementError struct{ Err error }

func (e *NoEnforcementError) Error() string {
	return fmt.Sprintf("no working exec enforcement: %v", e.Err)
}
func (e *NoEnforcementError) Unwrap() error { return e.Err }

// Agent is the running node agent.
type Agent struct {
	cfg Config
	log *slog.Logger
	fan *fanotify.Listener
	lsm *lsm // BPF-LSM, when it is the mechanism (lsm.go)
	// degraded says why the agent runs with less than was asked for
	// (--allow-degrade), "" when it does not.
	degraded    string
	canary      canaryState
	procMon     atomic.Pointer[execmon.Monitor]          // the exec sensor, when running
	writes      *fanotify.Listener                       // close-write notifications (--exec-events)
	hostInv     atomic.Pointer[agentproto.HostInventory] // the last host catalog (hostinv.go)
	flowTracker atomic.Pointer[netflow.Tracker]          // RunFlows' aggregate, fed by the exec sensor (flows.go)
	cache       *allowlist.DigestCache
	client      *client.Client

	mu         sync.RWMutex
	containers map[string]*container      // by containerd container id
	byDev      map[uint64]*container      // by the device of its root filesystem
	byCgroup   map[uint64]*container      // by cgroup v2 id (BPF-LSM)
	lists      map[string]*allowlist.List // by image manifest digest
	learning   map[string]*learning       // by image manifest digest (learn.go)
	ready      chan struct{}              // closed once existing containers are adopted
	stats      stats
	replacing  map[string]bool                     // containers being replaced (replace.go)
	runCtx     context.Context                     // Run's, for background work
	trees      recent[int, string]                 // process trees of drifted execs by PID (proctree.go)
	paths      recent[allowlist.Identity, drifted] // names and digests of drifted files by identity (hotpath.go)
	allow      allowState                          // the server's allowlists (allowsrv.go)
	// loaderChecks: the kernel shows the stacks that tell a direct exec of
	// the ELF interpreter from its load for a program (loader.go).
	loaderChecks bool
	memfdDev     uint64             // the memfd filesystem's device (unheld.go)
	mountWatch   *fanotify.Listener // mounts attached later (mountwatch.go)
	mounts       mountFlow          // the namespaces it follows (mountwatch.go)
	gate         gateState          // execs held until adoption (gate.go)
}

type stats struct {
	execs, allowed, refused, reported, unattributed, byCgroup atomic.Int64
	procExecs, procExits, procConnects, execWrites            atomic.Int64
}

// Stats are the agent's counters.
type Stats struct {
	Execs, Allowed, Refused, Reported, Unattributed int64
	// ByCgroup counts execs attributed by /proc/PID/cgroup, not by the
	// file's filesystem.
	ByCgroup int64
	Hashed   int64
	// EventsLost counts drift the BPF-LSM program decided but could not
	// report (its ring buffer was full); the decision stood.
	EventsLost int64
	// ProcessExecs and ProcessExits count the exec sensor's events in
	// watched containers; ProcessLost the node's events its ring buffer
	// dropped; ProcessKilled the unheld execs it killed (unheldkill.go).
	ProcessExecs, ProcessExits, ProcessConnects, ProcessLost, ProcessKilled int64
	// ExecutablesWritten counts files with an execute bit written in
	// watched containers (--exec-events).
	ExecutablesWritten int64
	// MountRereads counts containers' mount tables read again after a
	// mount report (mountreread.go).
	MountRereads int64
	// Allowlists count the lists made, by source (allowsrv.go).
	Allowlists AllowlistStats
	// Gate counts execs held until their container was adopted (gate.go).
	Gate GateStats
}

// New validates cfg and opens the enforcement mechanism.
func New(cfg Config) (*Agent, error) {
	if _, err := ParseMode(string(cfg.Mode)); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Report == nil {
		cfg.Report = logReport(cfg.Log)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Mechanism == "" {
		cfg.Mechanism = MechanismAuto
	}
	if _, err := ParseMechanism(string(cfg.Mechanism)); err != nil {
		return nil, err
	}
	if cfg.CanaryDir == "" {
		cfg.CanaryDir = "/run/bulwark-agent"
	}
	if cfg.CanaryEvery <= 0 {
		cfg.CanaryEvery = 30 * time.Second
	}
	a := &Agent{cfg: cfg, log: cfg.Log, cache: allowlist.NewDigestCache(digestsPerNode),
		containers: make(map[string]*container), byDev: make(map[uint64]*container), byCgroup: make(map[uint64]*container),
		lists: make(map[string]*allowlist.List), ready: make(chan struct{}), memfdDev: memfdDevice()}
	if err := cfg.checkModes(); err != nil { // modes.go
		return nil, err
	}
	for _, r := range cfg.namesAnywhere() {
		a.log.Warn("a mode rule relaxes by name in every namespace: whoever can create a pod in any namespace can take it (name the namespace)", "rule", r)
	}
	if a.strictest() != ModeOff {
		if err := a.openMechanism(); err != nil { // mechanism.go
			return nil, err
		}
		if a.fan != nil {
			err := stackReadable() // loader.go
			if err != nil {
				a.log.Error("direct execs of the ELF interpreter (the loader trick) are not refused: kernel stacks are unreadable", "error", err.Error())
			}
			a.loaderChecks = err == nil
		}
		a.defaultExecEvents() // unheldkill.go
	}
	return a, nil
}

// Run connects to containerd, adopts the containers that exist, follows
// new ones and answers every exec until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	c, err := client.New(a.cfg.Address)
	if err != nil {
		return fmt.Errorf("connecting to containerd at %q: %w", a.cfg.Address, err)
	}
	defer c.Close()
	a.client = c
	g, ctx := errgroup.WithContext(ctx)
	a.mu.Lock()
	a.runCtx = ctx
	a.mu.Unlock()
	if a.fan != nil {
		g.Go(func() error { return a.serve(ctx) })
		g.Go(func() error {
			<-ctx.Done()
			return a.fan.Close() // wakes serve; the kernel allows what is pending
		})
		if a.mountWatch = a.startMountWatch(); a.mountWatch != nil { // mountwatch.go
			g.Go(func() error { return a.serveMounts(ctx) })
			g.Go(func() error {
				<-ctx.Done()
				return a.mountWatch.Close()
			})
		}
	}
	if a.lsm != nil {
		g.Go(a.serveLSM)
		g.Go(func() error {
			<-ctx.Done()
			return a.lsm.enf.Close() // detaches: enforcement ends, nothing hangs
		})
	}
	cs, err := a.startCanary(ctx) // canary.go
	if err != nil {
		a.stop(g)
		return err
	}
	if cs != nil {
		defer cs.cleanup()
		g.Go(func() error { return a.canaryLoop(ctx, cs) })
	}
	if a.cfg.Learn.learning() || a.cfg.ModeRules.learning() {
		g.Go(func() error { return a.learnLoop(ctx) })
	}
	if a.cfg.ExecEvents {
		if m := a.startSensor(); m != nil { // before adoption: prevent's kill needs it (unheldkill.go)
			g.Go(func() error { return a.serveProcessEvents(ctx, m) })
		}
		if w, err := fanotify.NewNotify(); err == nil {
			a.writes = w
			g.Go(func() error { return a.serveWrites(ctx) })
		} else {
			a.log.Warn("executables written are not reported", "error", err.Error())
		}
	}
	g.Go(func() error { return a.watch(ctx) })
	g.Go(func() error { return a.upgradeLists(ctx) }) // allowupgrade.go
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// stop closes the mechanisms so the tasks of g return, and waits for them.
func (a *Agent) stop(g *errgroup.Group) {
	if a.fan != nil {
		a.fan.Close()
	}
	if a.lsm != nil {
		a.lsm.enf.Close()
	}
	_ = g.Wait()
}

// Ready is closed once the containers that existed at start are watched.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Stats returns the counters.
func (a *Agent) Stats() Stats {
	s := Stats{Execs: a.stats.execs.Load(), Allowed: a.stats.allowed.Load(), Refused: a.stats.refused.Load(),
		Reported: a.stats.reported.Load(), Unattributed: a.stats.unattributed.Load(), ByCgroup: a.stats.byCgroup.Load(), Hashed: a.cache.Hashed()}
	s.ProcessExecs, s.ProcessExits, s.ProcessConnects = a.stats.procExecs.Load(), a.stats.procExits.Load(), a.stats.procConnects.Load()
	s.ExecutablesWritten = a.stats.execWrites.Load()
	s.MountRereads = a.mounts.total.Load()
	s.Allowlists = a.allow.stats()
	s.Gate = a.gateStats()
	if m := a.procMon.Load(); m != nil {
		if ps, err := m.Stats(); err == nil {
			s.ProcessLost, s.ProcessKilled = int64(ps.Lost), int64(ps.Killed)
		}
	}
	if a.lsm != nil {
		if ks, err := a.lsm.enf.Stats(); err == nil { // the kernel's counters
			s.Execs += int64(ks.Checked)
			s.Allowed += int64(ks.Allowed)
			s.Refused += int64(ks.Refused)
			s.Reported += int64(ks.Reported)
			s.EventsLost = int64(ks.EventsLost)
		}
	}
	return s
}

// owner finds the watched container an exec belongs to: by the file's
// filesystem (the device of the container's overlay root, recorded at
// adoption: one map lookup), else by the process's cgroups (a read of
// /proc/PID/cgroup, about 0.2 ms here under load).
func (a *Agent) owner(id allowlist.Identity, ierr error, pid int) *container {
	if ierr == nil {
		a.mu.RLock()
		c := a.byDev[id.Dev]
		a.mu.RUnlock()
		if c != nil {
			return c
		}
	}
	a.stats.byCgroup.Add(1)
	return a.attribute(pid)
}

// attribute finds the watched container pid belongs to, from its cgroups.
func (a *Agent) attribute(pid int) *container {
	ids, err := cgroupCandidates(pid)
	if err != nil {
		return nil
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, id := range ids {
		if c, ok := a.containers[id]; ok {
			return c
		}
	}
	return nil
}
