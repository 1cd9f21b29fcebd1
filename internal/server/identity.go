package server

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/instance"
	"github.com/bulwark-sec/bulwark/internal/kube"
	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/trust"
)

// IdentityConfig configures workload identity (SPIFFE). A zero
// TrustDomain turns it off.
type IdentityConfig struct {
	// TrustDomain is the SPIFFE trust domain ("prod.example").
	TrustDomain string
	// Dir holds root.crt, state.json (the intermediate and JWT keys,
	// sealed with the server's secret key) and, for an online root,
	// root.key; "" is DataDir/identity. Without root.crt the server makes
	// an online root there; `bulwark ca init` and `bulwark ca intermediate`
	// keep the root offline instead.
	Dir string
	// Template names workloads (identity.DefaultTemplate when "").
	Template string
	// X509TTL is the life of an X.509-SVID (zero: one hour).
	X509TTL time.Duration
	// NodeGrace is how long a silent node's workloads are still renewed
	// (zero: identity.DefaultNodeGrace).
	NodeGrace time.Duration
	// RotateEvery is how often the intermediate and JWT keys are checked
	// for rotation (zero: one minute).
	RotateEvery time.Duration
	// FeedPoll is how often the change feed reads the audit log (zero:
	// trust.DefaultFeedPoll).
	FeedPoll time.Duration
	// Federate names the trust domains to federate with and their bundle
	// endpoints ("TD=https://host/path"); their bundles reach workloads
	// beside this trust domain's.
	Federate []string
	// TEEPolicy is the identity TEE policy file (trust.LoadTEEPolicy):
	// the workloads whose identities need a verified confidential
	// instance; "" none. RequireTEE adds rules in the flag form
	// (trust.ParseTEERule).
	TEEPolicy  string
	RequireTEE []string
}

// teePolicy reads the identity TEE policy of cfg: nil when there is none.
func teePolicy(cfg IdentityConfig, instances *instance.Tracker) (func(spiffeid.ID, identity.Workload) *identity.TEEFacts, error) {
	p := &trust.TEEPolicy{}
	if cfg.TEEPolicy != "" {
		var err error
		if p, err = trust.LoadTEEPolicy(cfg.TEEPolicy); err != nil {
			return nil, err
		}
	}
	for _, s := range cfg.RequireTEE {
		r, err := trust.ParseTEERule(s)
		if err != nil {
			return nil, fmt.Errorf("--identity-require-tee: %w", err)
		}
		p.Rules = append(p.Rules, r)
	}
	if len(p.Rules) == 0 {
		return nil, nil
	}
	if instances == nil {
		return p.Facts(nil), nil // refuses every workload a rule names
	}
	return p.Facts(instances), nil
}

// identityDir is where the server keeps its identity state.
func (c IdentityConfig) dir(dataDir string) string {
	if c.Dir != "" {
		return c.Dir
	}
	return filepath.Join(dataDir, "identity")
}

// identityService is the composed identity authority: the routes are on
// the handler; Tasks run beside the server.
type identityService struct {
	authority *identity.Authority
	feed      *trust.Feed
	registry  *trust.Registry
	federated *trust.Federation
	dir       string
	key       *seal.Key
	every     time.Duration
	log       *slog.Logger
}

// setupIdentity opens (or makes) the authority and turns the identity
// routes on; nil when cfg has no trust domain.
func setupIdentity(cfg IdentityConfig, kubeconfig, dataDir string, st *store.Store, key *seal.Key, h *api.Handler, egress *http.Client, instances *instance.Tracker, log *slog.Logger) (*identityService, error) {
	if cfg.TrustDomain == "" {
		return nil, nil
	}
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("--trust-domain %q: %w", cfg.TrustDomain, err)
	}
	tmplText := cfg.Template
	if tmplText == "" {
		tmplText = identity.DefaultTemplate
	}
	tmpl, err := identity.ParseTemplate(tmplText)
	if err != nil {
		return nil, err
	}
	fed := &trust.Federation{Client: egress, Log: log.With("task", "identity-federation")}
	for _, f := range cfg.Federate {
		p, err := trust.ParsePeer(f)
		if err != nil {
			return nil, err
		}
		if p.TrustDomain == td {
			return nil, fmt.Errorf("federation peer %q is this server's own trust domain", f)
		}
		fed.Peers = append(fed.Peers, p)
	}
	tee, err := teePolicy(cfg, instances)
	if err != nil {
		return nil, err
	}
	a, err := OpenAuthority(cfg.dir(dataDir), td, key, cfg.X509TTL, log)
	if err != nil {
		return nil, err
	}
	s := &identityService{authority: a, feed: trust.NewFeed(st, cfg.FeedPoll, log.With("task", "identity-feed")),
		registry: trust.NewRegistry(), federated: fed, dir: cfg.dir(dataDir), key: key, every: cfg.RotateEvery, log: log.With("task", "identity")}
	if s.every <= 0 {
		s.every = time.Minute
	}
	s.feed.OnChange = s.registry.Invalidate
	if tee != nil && instances != nil {
		// Another replica's instance changes (instance.image entries) are
		// read into this replica's tracker before its agents are woken to
		// ask again, so it decides on them.
		s.feed.OnChange = func(ds []string) {
			s.registry.Invalidate(ds)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := instances.Load(ctx, st); err != nil {
				s.log.Warn("reloading confidential instances", "err", err)
			}
		}
	}
	ic := api.IdentityConfig{Authority: a, Template: tmpl, Facts: trust.Facts(st), Grace: cfg.NodeGrace,
		Feed: s.feed, Decisions: s.registry, Federated: fed.Bundles, TEE: tee}
	if kubeconfig != "" {
		// Pods' service accounts come from the cluster, not the agent.
		kc, err := loadKube(kubeconfig)
		if err != nil {
			return nil, err
		}
		ic.ServiceAccounts = &kube.ServiceAccounts{Client: kc}
	}
	h.UseIdentity(ic)
	log.Info("workload identity on", "trustDomain", td.Name(), "template", tmplText, "serviceAccountsFromCluster", kubeconfig != "", "intermediateUntil", a.Intermediate().NotAfter)
	return s, nil
}

// OpenAuthority reads the identity directory: the root (making an online
// one when there is none), the sealed intermediate and JWT keys, and
// returns the authority after a first rotation, whose state it saves.
func OpenAuthority(dir string, td spiffeid.TrustDomain, key *seal.Key, x509TTL time.Duration, log *slog.Logger) (*identity.Authority, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the identity directory: %w", err)
	}
	rootCert, root, err := identity.ReadRoot(dir, key)
	if errors.Is(err, os.ErrNotExist) {
		if root, err = identity.NewRoot(td, 0, time.Now()); err != nil {
			return nil, err
		}
		if err := identity.WriteRoot(dir, key, root); err != nil {
			return nil, err
		}
		rootCert = root.Cert
		log.Warn("made an online identity root in the data directory; `bulwark ca init` keeps a root offline", "dir", dir)
	} else if err != nil {
		return nil, err
	}
	st, err := identity.LoadState(dir, key)
	if err != nil {
		return nil, err
	}
	if root == nil && st.Intermediate == nil {
		return nil, fmt.Errorf("the identity root is offline and %s holds no intermediate: run `bulwark ca intermediate`", dir)
	}
	a, err := identity.New(identity.Config{TrustDomain: td, Roots: []*x509.Certificate{rootCert}, Root: root,
		Intermediate: st.Intermediate, JWTKeys: st.JWTKeys, X509TTL: x509TTL})
	if err != nil {
		return nil, err
	}
	if err := identity.SaveState(dir, key, a.State()); err != nil {
		return nil, err
	}
	return a, nil
}

// Run rotates the intermediate (online root) and the JWT keys, saving the
// state after each change, and follows the change feed, until ctx ends.
func (s *identityService) Run(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.feed.Run(ctx) }()
	go s.federated.Run(ctx)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return <-done
		case <-t.C:
		}
		before, _ := s.authority.Bundle().SequenceNumber()
		beforeInt := s.authority.Intermediate()
		if err := s.authority.Rotate(); err != nil {
			// An offline root's intermediate is near its end: SVIDs keep
			// being issued until it expires; say so loudly.
			s.log.Error("rotating the identity keys", "error", err)
			continue
		}
		seq, _ := s.authority.Bundle().SequenceNumber()
		if before != seq || !beforeInt.Equal(s.authority.Intermediate()) {
			if err := identity.SaveState(s.dir, s.key, s.authority.State()); err != nil {
				return err
			}
			s.log.Info("identity keys rotated", "intermediateUntil", s.authority.Intermediate().NotAfter, "bundleSeq", seq)
		}
		if left := time.Until(s.authority.Intermediate().NotAfter); left < 24*time.Hour {
			s.log.Warn("the identity intermediate expires soon: run `bulwark ca intermediate`", "left", left.Round(time.Minute).String())
		}
	}
}

// Registry is the identities this server issued, by SPIFFE ID (for the
// secret store's Workloads).
func (s *identityService) Registry() *trust.Registry { return s.registry }

// InstallIntermediate signs a new intermediate with root (kept offline)
// and writes it, sealed with the server's key, to the identity directory
// dir with the root's certificate (never its key), keeping the JWT keys
// the server holds. A directory of another root is refused.
func InstallIntermediate(dir string, key *seal.Key, root *identity.CA, ttl time.Duration) (*identity.CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the identity directory: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, identity.RootKeyFile)); err == nil {
		return nil, fmt.Errorf("%s holds an online root key: an offline root's directory must not", dir)
	}
	certPath := filepath.Join(dir, identity.RootCertFile)
	if b, err := os.ReadFile(certPath); err == nil {
		if blk, _ := pem.Decode(b); blk == nil || !bytes.Equal(blk.Bytes, root.Cert.Raw) {
			return nil, fmt.Errorf("%s holds another root: move it away to change roots", certPath)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading %q: %w", certPath, err)
	} else if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Cert.Raw}), 0o644); err != nil {
		return nil, fmt.Errorf("writing %q: %w", certPath, err)
	}
	st, err := identity.LoadState(dir, key)
	if err != nil {
		return nil, err
	}
	it, err := root.NewIntermediate(ttl, time.Now())
	if err != nil {
		return nil, err
	}
	st.Intermediate = it
	if err := identity.SaveState(dir, key, st); err != nil {
		return nil, err
	}
	return it, nil
}
