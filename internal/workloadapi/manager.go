package workloadapi

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/bulwark-sec/bulwark/internal/identity"
)

// Issuer is the server as the agent sees it. A decision not to issue is
// an *identity.Refusal; any other error is a failure to ask, retried.
type Issuer interface {
	// IssueX509 asks an X.509-SVID over key's public part; key stays here
	// (it may sign a certificate request to prove it is held).
	IssueX509(ctx context.Context, w identity.Workload, key crypto.Signer) (identity.X509SVID, error)
	IssueJWT(ctx context.Context, w identity.Workload, audiences []string) (token string, expiry time.Time, err error)
	Bundle(ctx context.Context) (*spiffebundle.Bundle, error)
	// Changes waits (long poll) for certification changes after seq and
	// returns the digests whose certification changed and the new seq; a
	// first call with seq -1 returns the current seq at once.
	Changes(ctx context.Context, seq int64) (digests []string, next int64, err error)
}

// Federator is an Issuer that also lists the bundles of the trust domains
// the server federates with; they are handed to workloads beside the
// trust domain's own.
type Federator interface {
	FederatedBundles(ctx context.Context) ([]*spiffebundle.Bundle, error)
}

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	Issuer Issuer
	// Workloads lists the node's watched containers now.
	Workloads func() []identity.Workload
	// Every is how often the workload list is read and renewals checked;
	// zero is one second.
	Every time.Duration
	// RetryRefused is how often a refused identity is asked again without a
	// change pushed by the server; zero is 30 s.
	RetryRefused time.Duration
	Log          *slog.Logger
	Now          func() time.Time
}

// Manager holds the node's identities in memory: one X.509-SVID (with its
// private key, made here and never sent anywhere) per watched container
// that may have one, the JWT-SVIDs asked for, and the trust bundle.
type Manager struct {
	cfg ManagerConfig

	mu            sync.Mutex
	entries       map[string]*entry // by container id
	bundle        *spiffebundle.Bundle
	federated     []*spiffebundle.Bundle // replaced with bundle
	bundleFetched time.Time
	changed       chan struct{} // closed and replaced on every change
	kick          chan struct{}
	stats         ManagerStats
}

type entry struct {
	w       identity.Workload
	svid    *x509svid.SVID
	refusal *identity.Refusal // set: no identity (refused or withdrawn)
	due     time.Time         // when to ask (again)
	jwts    map[string]jwtEntry
}

type jwtEntry struct {
	token   string
	renewAt time.Time
}

// ManagerStats are the manager's figures.
type ManagerStats struct {
	Issued, Refused, Withdrawn, Failures int64
}

// NewManager returns a manager over cfg.
func NewManager(cfg ManagerConfig) *Manager {
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	if cfg.RetryRefused <= 0 {
		cfg.RetryRefused = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{cfg: cfg, entries: map[string]*entry{}, changed: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// Stats returns the manager's figures.
func (m *Manager) Stats() ManagerStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Run keeps the identities until ctx ends: it follows the workload list,
// renews each X.509-SVID at half life, and follows the server's
// certification changes so a revocation is acted on when it happens.
func (m *Manager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); m.followChanges(ctx) }()
	defer wg.Wait()
	t := time.NewTicker(m.cfg.Every)
	defer t.Stop()
	for {
		m.pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-m.kick:
		}
	}
}

// Withdraw drops a container's identity at once (drift seen by this
// agent): its streams end with PermissionDenied. Drift is for the
// container's life; it is not asked again.
func (m *Manager) Withdraw(container, reason, detail string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[container]
	if !ok {
		e = &entry{}
		m.entries[container] = e
	}
	if e.refusal != nil && e.refusal.Reason == reason {
		return
	}
	e.svid, e.jwts, e.refusal, e.due = nil, nil, &identity.Refusal{Reason: reason, Detail: detail}, time.Time{}
	m.stats.Withdrawn++
	m.notifyLocked()
	m.cfg.Log.Warn("identity withdrawn", "container", container, "reason", reason, "detail", detail)
}

// Recheck asks again, now, for the identities of containers running one
// of digests (all with none given).
func (m *Manager) Recheck(digests ...string) {
	m.mu.Lock()
	now := m.cfg.Now()
	for _, e := range m.entries {
		if (len(digests) == 0 || slices.Contains(digests, e.w.Image)) && !drifted(e) {
			e.due = now
		}
	}
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func drifted(e *entry) bool { return e.refusal != nil && e.refusal.Reason == identity.ReasonDrifted }

func (m *Manager) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// pass syncs the workload list and asks for what is due.
func (m *Manager) pass(ctx context.Context) {
	now := m.cfg.Now()
	ws := m.cfg.Workloads()
	m.mu.Lock()
	seen := make(map[string]bool, len(ws))
	var due []identity.Workload
	for _, w := range ws {
		seen[w.Container] = true
		e, ok := m.entries[w.Container]
		if !ok {
			e = &entry{due: now}
			m.entries[w.Container] = e
		}
		e.w = w
		if !drifted(e) && !e.due.After(now) {
			due = append(due, w)
		}
	}
	for id := range m.entries {
		if !seen[id] {
			delete(m.entries, id)
		}
	}
	m.mu.Unlock()
	if m.bundleDue(now) {
		if b, err := m.cfg.Issuer.Bundle(ctx); err != nil {
			m.cfg.Log.Warn("fetching the trust bundle", "error", err)
		} else {
			fed := m.federatedNow()
			if fr, ok := m.cfg.Issuer.(Federator); ok {
				if got, err := fr.FederatedBundles(ctx); err != nil {
					m.cfg.Log.Warn("fetching the federated bundles", "error", err)
				} else {
					fed = got
				}
			}
			m.mu.Lock()
			m.bundle, m.federated, m.bundleFetched = b, fed, now
			m.notifyLocked()
			m.mu.Unlock()
		}
	}
	for _, w := range due {
		if ctx.Err() != nil {
			return
		}
		m.issue(ctx, w)
	}
}

func (m *Manager) federatedNow() []*spiffebundle.Bundle {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.federated
}

func (m *Manager) bundleDue(now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bundle == nil || m.bundleFetched.Add(identity.BundleRefreshHint).Before(now)
}

// issue asks for one container's X.509-SVID over a new key.
func (m *Manager) issue(ctx context.Context, w identity.Workload) {
	key, err := identity.NewKey()
	if err != nil {
		m.cfg.Log.Error("making a workload key", "error", err)
		return
	}
	s, err := m.cfg.Issuer.IssueX509(ctx, w, key)
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[w.Container]
	if !ok || drifted(e) {
		return // gone, or drifted while asking: the answer is not used
	}
	var ref *identity.Refusal
	switch {
	case errors.As(err, &ref):
		m.stats.Refused++
		if e.svid != nil || e.refusal == nil || e.refusal.Reason != ref.Reason {
			m.cfg.Log.Info("identity refused", "container", w.Container, "image", w.Image, "reason", ref.Reason, "detail", ref.Detail)
		}
		retry := m.cfg.RetryRefused
		if ref.Reason == identity.ReasonNodeSilent {
			// This node's own heartbeat is late (a server restart, a
			// partition): no change will be pushed when it is heard again.
			retry = min(retry, nodeSilentRetry)
		}
		e.svid, e.jwts, e.refusal, e.due = nil, nil, ref, now.Add(retry)
		m.notifyLocked()
	case err != nil:
		m.stats.Failures++
		m.cfg.Log.Warn("asking for an identity", "container", w.Container, "error", err)
		// Keep what is held (it still expires); try again soon.
		e.due = now.Add(min(5*time.Second, m.cfg.RetryRefused))
	default:
		m.stats.Issued++
		leaf := s.Chain[0]
		e.svid = &x509svid.SVID{ID: s.ID, Certificates: s.Chain, PrivateKey: key}
		e.refusal, e.jwts = nil, nil
		e.due = identity.RenewAt(leaf.NotBefore, leaf.NotAfter)
		m.notifyLocked()
	}
}

// followChanges long-polls the server for certification changes and
// rechecks the containers of each changed digest at once.
func (m *Manager) followChanges(ctx context.Context) {
	seq := int64(-1) // first: the current sequence number
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		digests, next, err := m.cfg.Issuer.Changes(ctx, seq)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, 200*time.Millisecond), 10*time.Second)
			m.cfg.Log.Warn("following certification changes", "error", err, "retry_in", backoff.String())
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		if seq >= 0 && len(digests) > 0 {
			m.Recheck(digests...)
		}
		seq = next
	}
}

// snapshot is what the Workload API serves a container now.
type snapshot struct {
	svid      *x509svid.SVID
	bundle    *spiffebundle.Bundle
	federated []*spiffebundle.Bundle
	refusal   *identity.Refusal
	pending   bool // known, not decided yet
	changed   <-chan struct{}
}

func (m *Manager) snapshot(container string) snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := snapshot{bundle: m.bundle, federated: m.federated, changed: m.changed}
	e, ok := m.entries[container]
	if !ok {
		// Adopted by the agent, not yet seen by a pass: a caller waits,
		// so pass now rather than at the next tick.
		s.pending = true
		select {
		case m.kick <- struct{}{}:
		default:
		}
		return s
	}
	s.svid, s.refusal = e.svid, e.refusal
	if s.svid != nil && !m.cfg.Now().Before(s.svid.Certificates[0].NotAfter) {
		s.svid = nil // expired and not renewed: the server stopped issuing
		s.refusal = &identity.Refusal{Reason: "expired", Detail: "not renewed"}
	}
	s.pending = s.svid == nil && s.refusal == nil
	return s
}

// jwt returns a JWT-SVID for the container, cached until half its life.
func (m *Manager) jwt(ctx context.Context, container string, audiences []string) (string, error) {
	key := strings.Join(audiences, "\x00")
	m.mu.Lock()
	e, ok := m.entries[container]
	if !ok || e.svid == nil {
		m.mu.Unlock()
		return "", &identity.Refusal{Reason: identity.ReasonNotWorkload, Detail: "no identity"}
	}
	w := e.w
	if j, ok := e.jwts[key]; ok && m.cfg.Now().Before(j.renewAt) {
		m.mu.Unlock()
		return j.token, nil
	}
	m.mu.Unlock()
	tok, exp, err := m.cfg.Issuer.IssueJWT(ctx, w, audiences)
	if err != nil {
		var ref *identity.Refusal
		if errors.As(err, &ref) {
			m.Withdraw(container, ref.Reason, ref.Detail)
		}
		return "", err
	}
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[container]; ok && e.svid != nil {
		if e.jwts == nil {
			e.jwts = map[string]jwtEntry{}
		}
		if len(e.jwts) >= maxJWTCache {
			clear(e.jwts)
		}
		e.jwts[key] = jwtEntry{token: tok, renewAt: identity.RenewAt(now, exp)}
		return tok, nil
	}
	return "", fmt.Errorf("the identity of container %s was withdrawn", container)
}

// nodeSilentRetry is how soon an identity refused because this node was
// not heard from is asked again.
const nodeSilentRetry = 5 * time.Second

// maxJWTCache bounds the JWT-SVIDs kept per container (one per audience set).
const maxJWTCache = 64
