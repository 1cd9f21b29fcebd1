package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/governance"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/instance"
	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/secretstore"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// SecretsConfig says how the secret store, its workload listener and data
// governance run. The zero value is a secret store under the server's
// secret key (the file KEK), no workload listener and an empty catalogue.
type SecretsConfig struct {
	// KEK is "file" (default: the key of SecretKeyFile wraps the data
	// keys) or "pkcs11" (an AES key on a PKCS#11 token, PKCS11).
	KEK    string
	PKCS11 secretstore.PKCS11Config
	// Catalogue is the governance catalogue (YAML): data classes,
	// regulations, data stores, grants, node regions; "" none.
	Catalogue string
	// WorkloadListen is the address of the workload API (mTLS with
	// X.509-SVIDs, and Vault's KV v2 read path); "" serves none.
	// WorkloadCert and WorkloadKey are its TLS certificate and key,
	// WorkloadCA the PEM bundle of the identity CA that signs SVIDs.
	WorkloadListen, WorkloadCert, WorkloadKey, WorkloadCA string
	// TrustDomain and Template name each running container with the
	// identity it is issued (the identity service's); the defaults are
	// "bulwark.local" and identity.WorkloadTemplate.
	TrustDomain, Template string
}

// secrets is the composed secret store and governance of a server.
type secrets struct {
	catalogue  *governance.Live
	instances  *instance.Tracker // nil: no confidential instances
	service    *secretstore.Service
	governance *governance.Service
	trust      *secretstore.Trust
	workload   *secretstore.Server // nil: no listener
	log        *slog.Logger
	close      func() error
}

// startSecrets opens the KEK, loads the catalogue and the secrets, and
// wires the trust view and (when configured) the workload listener.
// With workload identity on (ids), identities are named as it names them
// and an identity it issued is judged on the container it was issued to;
// a node's region is the catalogue's, else what its agent reports (running).
func startSecrets(ctx context.Context, cfg Config, st *store.Store, auditor *api.Auditor, key *seal.Key, policy string,
	ids *identityService, running *fleet.Index, log *slog.Logger) (*secrets, error) {
	c := cfg.Secrets
	if c.TrustDomain == "" && ids != nil {
		c.TrustDomain, c.Template = cfg.Identity.TrustDomain, cfg.Identity.Template
		if c.Template == "" {
			c.Template = identity.DefaultTemplate
		}
	}
	s := &secrets{close: func() error { return nil }, log: log.With("task", "secrets")}
	var kek secretstore.KEK
	switch c.KEK {
	case "", "file":
		kek = secretstore.NewFileKEK(key)
	case "pkcs11":
		p, err := secretstore.OpenPKCS11KEK(c.PKCS11)
		if err != nil {
			return nil, err
		}
		kek, s.close = p, p.Close
	default:
		return nil, fmt.Errorf("secret store KEK %q: want file or pkcs11", c.KEK)
	}
	cat, err := governance.NewLive(c.Catalogue)
	if err != nil {
		s.close()
		return nil, err
	}
	cat.Auditor, cat.Log = auditor, log.With("task", "governance-catalogue")
	cat.Changed = func(ctx context.Context) {
		if err := s.service.Load(ctx); err != nil {
			s.log.Error("the secrets do not fit the new governance catalogue (their previous residency stays)", "err", err)
		}
	}
	s.catalogue = cat
	td, tmpl, err := naming(c)
	if err != nil {
		s.close()
		return nil, err
	}
	// A node's region: attested by the platform where a verified
	// confidential instance on it says so, else configured (the
	// catalogue), else what its agent reports.
	region := func(node string) string {
		if r := s.attestedRegion(node); r != "" {
			return r
		}
		if r := cat.NodeRegion(node); r != "" || running == nil {
			return r
		}
		n, _ := running.Node(node)
		return n.Region
	}
	s.trust = &secretstore.Trust{Store: st, TrustDomain: td, Template: tmpl, Policy: policy, Region: region,
		Log: log.With("task", "workload-trust")}
	if ids != nil {
		s.trust.Issued = func(id string) (string, string, bool) {
			w, ok := ids.registry.Workload(id)
			return w.Node, w.Container, ok
		}
		s.trust.IssuedTo = func(node, container string) (string, bool) {
			for _, d := range ids.registry.List() {
				if d.Node == node && d.Container == container && d.Issued && !d.Stale {
					return d.SpiffeID, true
				}
			}
			return "", false
		}
	}
	s.service, err = secretstore.New(ctx, secretstore.Config{Store: st, KEK: kek, Auditor: auditor, Catalogue: cat,
		Workloads: s.trust, Grants: cat})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("loading the secret store: %w", err)
	}
	s.governance = &governance.Service{Live: cat, Store: st, Auditor: auditor, Owner: owner(st), Region: region,
		ImageOf: func(node, container string) (string, bool) {
			w, ok := s.trust.Container(node, container)
			return w.Digest, ok && w.Digest != ""
		},
		Secrets: func() []governance.SecretClasses {
			var out []governance.SecretClasses
			for _, i := range s.service.List() {
				out = append(out, governance.SecretClasses{Name: i.Name, Classes: i.Classes, ReleasedTo: s.service.ReleasedTo(i.Name)})
			}
			return out
		}}
	if c.WorkloadListen != "" {
		tc, err := workloadTLS(c)
		if err != nil {
			s.close()
			return nil, err
		}
		s.workload = &secretstore.Server{Addr: c.WorkloadListen, TLS: tc,
			Handler: secretstore.NewHandler(s.service, log.With("task", "workload-api"))}
	}
	return s, nil
}

// useInstances lets release policies' tee: condition read the
// attestation status of confidential instances (registered under the
// workload's SPIFFE ID).
func (s *secrets) useInstances(tr *instance.Tracker) {
	if tr == nil {
		return
	}
	s.instances = tr
	s.trust.TEE = func(id string) string {
		k, _ := tr.WorkloadTEE(id)
		return string(k)
	}
}

// attestedRegion is the region of node the platform attested: that of a
// verified confidential instance on it whose region comes from its
// hardware-signed chip id ("" none).
func (s *secrets) attestedRegion(node string) string {
	if s.instances == nil {
		return ""
	}
	for _, in := range s.instances.List("") {
		if in.Node == node && in.Status == instance.Verified && in.RegionSource == instance.RegionPlatform && in.Region != "" {
			return in.Region
		}
	}
	return ""
}

// secretReload is how often the secrets' metadata is read again, so a
// write on another replica (a rotation, a policy, a deletion) reaches this
// one's releases.
const secretReload = 2 * time.Second

// catalogueCheck is how often the governance catalogue's file is looked at.
const catalogueCheck = 10 * time.Second

// reload reads the secrets' metadata every interval; a failure keeps the
// previous view and is logged.
func (s *secrets) reload(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := s.service.Load(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("reloading the secrets", "err", err)
		}
	}
}

// Run refreshes the trust view and serves the workload listener.
func (s *secrets) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.trust.Run(ctx) })
	g.Go(func() error { return s.reload(ctx, secretReload) })
	g.Go(func() error { return s.catalogue.Run(ctx, catalogueCheck) })
	if s.workload != nil {
		g.Go(func() error { return s.workload.Run(ctx) })
	}
	return g.Wait()
}

func naming(c SecretsConfig) (spiffeid.TrustDomain, *identity.Template, error) {
	tdName, tmplText := c.TrustDomain, c.Template
	if tdName == "" {
		tdName = "bulwark.local"
	}
	if tmplText == "" {
		tmplText = identity.WorkloadTemplate
	}
	td, err := spiffeid.TrustDomainFromString(tdName)
	if err != nil {
		return td, nil, fmt.Errorf("trust domain %q: %w", tdName, err)
	}
	tmpl, err := identity.ParseTemplate(tmplText)
	return td, tmpl, err
}

func workloadTLS(c SecretsConfig) (*tls.Config, error) {
	if c.WorkloadCert == "" || c.WorkloadKey == "" || c.WorkloadCA == "" {
		return nil, errors.New("the workload listener needs its certificate, key and the identity CA bundle")
	}
	cert, err := tls.LoadX509KeyPair(c.WorkloadCert, c.WorkloadKey)
	if err != nil {
		return nil, fmt.Errorf("loading the workload listener's certificate: %w", err)
	}
	b, err := os.ReadFile(c.WorkloadCA)
	if err != nil {
		return nil, fmt.Errorf("reading the identity CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("reading the identity CA bundle %s: no PEM certificate in it", c.WorkloadCA)
	}
	return secretstore.TLSConfig(cert, pool), nil
}

// owner is the application owning digest's image, from the stored image
// (repository, labels) and the applications.
func owner(st *store.Store) func(ctx context.Context, digest string) (string, error) {
	return func(ctx context.Context, digest string) (string, error) {
		img, err := st.Image(ctx, digest)
		if errors.Is(err, store.ErrNotFound) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		apps, err := st.ListApplications(ctx)
		if err != nil {
			return "", err
		}
		if a := store.OwnerOf(apps, img.Repository, img.Labels); a != nil {
			return a.Name, nil
		}
		return "", nil
	}
}
