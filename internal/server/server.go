package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/console"
	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/fuzzcampaign"
	"github.com/bulwark-sec/bulwark/internal/image"
	"github.com/bulwark-sec/bulwark/internal/kube"
	"github.com/bulwark-sec/bulwark/internal/notify"
	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/reeval"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/sign"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/vulndb"
)

// Defaults of Config's zero fields.
const (
	DefaultListen           = "127.0.0.1:8480"
	DefaultWorkers          = 2
	DefaultPollInterval     = time.Second
	DefaultWatchInterval    = 5 * time.Minute
	DefaultStaleAfter       = 30 * time.Minute
	DefaultShutdownTimeout  = 10 * time.Second
	DefaultAdvisoryInterval = 6 * time.Hour
)

// Config is the runtime configuration of Run. Zero fields take the
// defaults above.
type Config struct {
	// DataDir holds bulwark.db (and its audit anchor) and cache/, the layer
	// cache. Created 0700 when missing. Required.
	DataDir string
	// Instance names this replica in job claims ("claimed_by"); default
	// host/pid.
	Instance string
	// Database, when set, is a postgres:// DSN used instead of the SQLite
	// file in DataDir, so that several replicas share one database.
	Database string
	// AdvisoryDB is the advisory database (a vulndb file, as `bulwark db`
	// uses) that POST /api/v1/advisories/import writes and re-evaluation
	// matches against; "" is DataDir/osv.db. Created when missing.
	AdvisoryDB string
	// Listen is the API's TCP address; "127.0.0.1:0" picks a free port.
	Listen string
	// Workers is the number of scan workers.
	Workers int
	// PollInterval is how long an idle worker sleeps before claiming again.
	PollInterval time.Duration
	// WatchInterval is how often the registered registries are polled for
	// new digests.
	WatchInterval time.Duration
	// StaleAfter is the lease of a claimed job: a job still running after
	// it is presumed orphaned (its worker died) and requeued. Longer than
	// any scan.
	StaleAfter time.Duration
	// ShutdownTimeout bounds the wait for in-flight HTTP requests.
	ShutdownTimeout time.Duration
	// Insecure allows plain HTTP and unverified TLS for every registry
	// (localhost and private addresses always may).
	Insecure bool
	// ImageLimits bound what one scanned image may cost (layer, image and
	// cache sizes, compression ratio); zero fields take image's defaults.
	ImageLimits image.Limits
	// AdvisorySources are imported into the advisory database at start and
	// every AdvisoryInterval (vulndb sources as `bulwark db import` takes
	// them); none: the database changes only through the API.
	AdvisorySources []string
	// AdvisoryInterval is the schedule of AdvisorySources; zero is
	// DefaultAdvisoryInterval.
	AdvisoryInterval time.Duration
	// AllowPrivate names the hosts ("host" or "host:port"; "*" for all)
	// that registry and advisory connections may reach at loopback,
	// private or link-local addresses; every other host must resolve to
	// public addresses (checked at dial time: no SSRF, no DNS rebinding).
	AllowPrivate []string
	// APILimits are the API's per-token rate limit, request timeout and
	// match bound; zero fields take api's defaults.
	APILimits api.Limits
	// AdvisoryMaxAge is how old the advisory data may be before decisions
	// fail the vulnerabilities rule as unknown; zero is
	// DefaultAdvisoryMaxAge, negative is no maximum.
	AdvisoryMaxAge time.Duration
	// Policy is the policy file the scans judge images with; "" is the
	// built-in rules with their defaults.
	Policy string
	// SigningKey is the private key (bulwark key generate or cosign
	// generate-key-pair) the server certifies passing images with, and
	// SigningPassphrase its passphrase. Without it, decisions are recorded
	// and nothing is certified by the server.
	SigningKey        string
	SigningPassphrase []byte
	// SecretKeyFile holds the key that seals registry credentials and
	// webhook secrets; "" is $BULWARK_SECRET_KEY, else DataDir/secret.key
	// (created on first start).
	SecretKeyFile string
	// Checkpoints says how the audit log is checkpointed (signed, exported).
	Checkpoints CheckpointConfig
	// Secrets configures the secret store and data governance.
	Secrets SecretsConfig
	// Ready, when set, is called with the bound address once the API
	// listens.
	Ready func(addr net.Addr)
	// Logger is nil for slog.Default().
	Logger *slog.Logger
	// AttestCollateral is the confidential-computing collateral directory
	// (attest.LoadOptions: vendor roots, VCEKs, Intel TCB info and QE
	// identity, the TEE policy), re-read when it changes; "" trusts the
	// vendors' real roots and has no Intel collateral.
	AttestCollateral string
	// AttestPolicy is the instance policy file (regions, platforms,
	// re-attestation period); "" is none.
	AttestPolicy string
	// AttestKeys are public key files whose image signatures and reference
	// attestations are believed, besides the signing key's.
	AttestKeys []string
	// Identity configures workload identity (off without a trust domain).
	Identity IdentityConfig
	// ResponsePolicy is the runtime response policy file (respond.Parse);
	// "" alerts only. Kubeconfig is the cluster the responses act on (and
	// identity reads pods' service accounts from); ""
	// acts on none (in a pod, "in-cluster" uses its service account).
	ResponsePolicy string
	Kubeconfig     string
	// AgentServiceAccount (NAMESPACE/NAME) lets agents authenticate with
	// their pod's projected service account token for AgentAudience
	// (agentauth.go); "" accepts API tokens only. It needs Kubeconfig.
	AgentServiceAccount string
	AgentAudience       string
}

func (c *Config) fill() error {
	if c.Instance == "" {
		host, _ := os.Hostname()
		c.Instance = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	if c.DataDir == "" {
		return errors.New("no data directory")
	}
	c.Checkpoints.fill(c.DataDir)
	if c.AdvisoryDB == "" {
		c.AdvisoryDB = filepath.Join(c.DataDir, "osv.db")
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.WatchInterval <= 0 {
		c.WatchInterval = DefaultWatchInterval
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = DefaultStaleAfter
	}
	if c.AdvisoryInterval <= 0 {
		c.AdvisoryInterval = DefaultAdvisoryInterval
	}
	if c.AdvisoryMaxAge == 0 {
		c.AdvisoryMaxAge = DefaultAdvisoryMaxAge
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// DBPath is the store's file in dataDir.
func DBPath(dataDir string) string { return filepath.Join(dataDir, "bulwark.db") }

// Store is what the server needs from the store.
type Store interface {
	api.Store
	ClaimJob(ctx context.Context, worker string, kinds ...string) (*store.Job, error)
	CompleteJob(ctx context.Context, j *store.Job) error
	FailJob(ctx context.Context, j *store.Job, cause error) error
	PutImage(ctx context.Context, img store.Image) error
	PutInventory(ctx context.Context, digest string, inv *sbom.SBOM, distro *sbom.Distro) error
	SetTag(ctx context.Context, repository, tag, digest string) error
	Close() error
}

// staleRequeuer requeues orphaned jobs.
type staleRequeuer interface {
	RequeueStale(ctx context.Context, claimedBefore time.Time) (int64, error)
}

// OpenStore creates dataDir (0700) and opens the store in it. The caller
// closes it.
func OpenStore(ctx context.Context, dataDir string) (*store.Store, error) {
	return OpenStoreAt(ctx, dataDir, "")
}

// OpenStoreAt is OpenStore with the database at database (a postgres://
// DSN) when it is set.
func OpenStoreAt(ctx context.Context, dataDir, database string) (*store.Store, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	target := database
	if target == "" {
		target = DBPath(dataDir)
	}
	st, err := store.Open(ctx, target)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Run serves until ctx is cancelled (nil) or a task fails (its error).
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.fill(); err != nil {
		return err
	}
	log := cfg.Logger
	st, err := OpenStoreAt(ctx, cfg.DataDir, cfg.Database)
	if err != nil {
		return err
	}
	defer st.Close()

	// A SQLite database belongs to this one process: a job still running
	// in it was running when the previous process died (kill -9, power
	// loss) and is requeued now rather than after its lease.
	if st.Dialect() == "sqlite" {
		if n, err := st.RequeueStale(ctx, time.Now().Add(time.Minute)); err != nil {
			return err
		} else if n > 0 {
			log.Warn("requeued jobs interrupted by the previous stop", "count", n)
		}
	}
	key, err := seal.Load(cfg.SecretKeyFile, filepath.Join(cfg.DataDir, "secret.key"))
	if err != nil {
		return err
	}
	pol, err := loadPolicy(cfg.Policy)
	if err != nil {
		return err
	}
	var signer sign.Signer
	if cfg.SigningKey != "" {
		if signer, err = sign.LoadKeyFile(cfg.SigningKey, cfg.SigningPassphrase); err != nil {
			return err
		}
	}
	var srcs []vulndb.Source
	for _, s := range cfg.AdvisorySources {
		srcs = append(srcs, vulndb.ParseSource(s))
	}

	metrics := &api.Metrics{Images: api.CountImages(st.DB())}
	auditor := api.NewAuditor(st, audit.AnchorPath(DBPath(cfg.DataDir)))
	handler := api.New(st, auditor, metrics, log)
	adb, err := vulndb.Open(cfg.AdvisoryDB)
	if err != nil {
		return fmt.Errorf("opening the advisory database: %w", err)
	}
	defer adb.Close()
	adb.TrackChanges = true
	adv := &advisoryData{adb: adb, maxAge: cfg.AdvisoryMaxAge, now: time.Now}
	egressTransport := (&egress{allow: cfg.AllowPrivate}).transport()
	adb.HTTPClient = &http.Client{Transport: egressTransport}
	kc := &keychain{store: st, key: key, log: log}
	checkpoints, err := NewCheckpointWriter(cfg, st.DB(), key, kc, log)
	if err != nil {
		return err
	}
	judge := &judgment{store: st, auditor: auditor, policy: pol, signer: signer, keychain: kc, insecure: cfg.Insecure, now: time.Now}
	judge.advisoryStatus = adv.status
	judge.transport = egressTransport
	upd := &updater{
		adb: adb,
		engine: func(record func(string, map[string]int)) *reeval.Engine {
			return &reeval.Engine{Store: st, Advisory: adb, Judge: judge.judge(reeval.SeverityJudge(pol.VulnerabilityThreshold()), record)}
		},
		store:    st,
		sources:  srcs,
		interval: cfg.AdvisoryInterval,
		log:      log.With("task", "advisories"),
		anchor:   auditor.Anchor,
		jobs:     st,
		instance: cfg.Instance + "/advisories",
		retry:    cfg.PollInterval,
		imported: adv.invalidate,
	}
	running := fleet.New(&describer{store: st, adb: adb}, log.With("task", "fleet"))
	upd.imported = func() { adv.invalidate(); running.Rematch() }
	respondWorker, err := responder(cfg, st, auditor, running, log.With("task", "respond"))
	if err != nil {
		return err
	}
	handler.UseFleet(running, respondWorker.Wake)
	if cfg.Kubeconfig != "" {
		kc, err := loadKube(cfg.Kubeconfig)
		if err != nil {
			return err
		}
		handler.UseNodeImages(&kube.NodePods{Client: kc}) // an uncertified allowlist needs the kubelet's word
		if err := useAgentAuth(cfg, kc, handler, log); err != nil {
			return err
		}
	} else if cfg.AgentServiceAccount != "" {
		return errors.New("--agent-service-account needs the cluster that reviews the tokens: --kubeconfig")
	}
	ev := &events{store: st, handler: handler, log: log.With("task", "events"), instance: cfg.Instance + "/events", poll: cfg.PollInterval}
	ev.fleet, ev.wakeRespond = running, respondWorker.Wake
	ev.late = newLateRevocations(st, running, respondWorker.Wake, cfg.PollInterval, log.With("task", "late-revocations"))
	ev.wake = make(chan struct{}, 1)
	upd.revoked = ev.Wake
	handler.UseAdvisoryUpdater(upd)
	handler.UseSealKey(key)
	handler.UseAdvisorySource(adb, adv.status)
	handler.UseLimits(cfg.APILimits)
	instances, sweeper, err := confidential(ctx, &cfg, st, auditor, signer, sign.Options{Insecure: cfg.Insecure, Keychain: kc, Transport: egressTransport}, log)
	if err != nil {
		return err
	}
	handler.UseInstances(instances)
	ids, err := setupIdentity(cfg.Identity, cfg.Kubeconfig, cfg.DataDir, st, key, handler, &http.Client{Transport: egressTransport, Timeout: 30 * time.Second}, instances, log)
	if err != nil {
		return err
	}
	sec, err := startSecrets(ctx, cfg, st, auditor, key, pol.Name, ids, running, log)
	if err != nil {
		return err
	}
	defer sec.close()
	handler.UseSecrets(sec.service)
	handler.UseGovernance(sec.governance)
	sec.useInstances(instances)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	log.Info("bulwark server listening", "addr", ln.Addr().String(), "dataDir", cfg.DataDir, "workers", cfg.Workers)
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr())
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return serveHTTP(ctx, ln, console.Mount(handler, st, console.Options{Logger: log, Advisories: adb, AdvisoryStatus: adv.status,
			Instances: instances, Running: running, Governance: sec.governance}), cfg.ShutdownTimeout, log)
	})
	wt := &watcher{store: st, log: log.With("task", "watch"), interval: cfg.WatchInterval, insecure: cfg.Insecure, keychain: kc, keys: publicKeys(signer)}
	wt.transport = egressTransport
	for i := range cfg.Workers {
		w := &worker{
			name:     fmt.Sprintf("%s/%d", cfg.Instance, i),
			store:    st,
			metrics:  metrics,
			log:      log.With("worker", i),
			cacheDir: filepath.Join(cfg.DataDir, "cache"),
			insecure: cfg.Insecure,
			limits:   cfg.ImageLimits,
			poll:     cfg.PollInterval,
			keychain: kc,
			advisory: adb,
			judgment: judge,
			skip:     endOfLife(st),
			runPoll:  wt.runPoll,
			artifact: wt.artifactJob,
		}
		w.advisoryStatus = adv.status
		w.transport = egressTransport
		g.Go(func() error { return w.Run(ctx) })
	}
	g.Go(func() error { return upd.Run(ctx) })
	g.Go(func() error { return ev.Run(ctx) })
	dispatcher := &notify.Dispatcher{Store: st, Key: key, Logger: log.With("task", "notify"),
		Instance: cfg.Instance, PollInterval: cfg.PollInterval}
	g.Go(func() error { return dispatcher.Run(ctx) })
	g.Go(func() error { return wt.Run(ctx) })
	g.Go(func() error { return requeueStale(ctx, st, cfg.StaleAfter, log) })
	g.Go(func() error { return checkpoints.Run(ctx) })
	fuzzRunner := &fuzzcampaign.Runner{Store: st, Key: key, Transport: egressTransport, Instance: cfg.Instance,
		Poll: cfg.PollInterval, Logger: log.With("task", "fuzz")}
	g.Go(func() error { return fuzzRunner.Run(ctx) })
	g.Go(func() error { return sweeper.Run(ctx) })
	if ids != nil {
		g.Go(func() error { return ids.Run(ctx) })
	}
	g.Go(func() error { return sec.Run(ctx) })
	g.Go(func() error { return running.Run(ctx) })
	g.Go(func() error { return running.Sweep(ctx, time.Minute, fleet.DefaultSilent) }) // silent nodes forgotten
	g.Go(func() error { return respondWorker.Run(ctx) })
	g.Go(func() error { return ev.late.Run(ctx) })
	err = g.Wait()
	finalCheckpoint(ctx, checkpoints, cfg.ShutdownTimeout, log)
	log.Info("bulwark server stopped", "err", err)
	return err
}

// endOfLife reports whether an image of repository with labels belongs
// to an end-of-life application (store.OwnerOf: by label first, then by
// repository pattern), whose images are not scanned.
func endOfLife(st *store.Store) func(ctx context.Context, repository string, labels map[string]string) (bool, error) {
	return func(ctx context.Context, repository string, labels map[string]string) (bool, error) {
		apps, err := st.ListApplications(ctx)
		if err != nil {
			return false, err
		}
		a := store.OwnerOf(apps, repository, labels)
		return a != nil && a.Lifecycle == store.LifecycleEndOfLife, nil
	}
}

// loadPolicy loads the policy file, or the built-in rules with their
// defaults when file is "".
func loadPolicy(file string) (*policy.Policy, error) {
	if file == "" {
		return policy.Parse("(built-in defaults)", nil)
	}
	return policy.Load(file)
}

// serveHTTP serves ln until ctx is done, then shuts down gracefully:
// in-flight requests get timeout to finish.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, timeout time.Duration, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutting down HTTP: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving HTTP: %w", err)
	}
	return nil
}

// requeueStale returns orphaned jobs to the queue at start and then every
// quarter lease.
func requeueStale(ctx context.Context, st staleRequeuer, lease time.Duration, log *slog.Logger) error {
	t := time.NewTicker(lease / 4)
	defer t.Stop()
	for {
		n, err := st.RequeueStale(ctx, time.Now().Add(-lease))
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return fmt.Errorf("requeueing stale jobs: %w", err)
		case n > 0:
			log.Warn("requeued stale jobs", "count", n, "lease", lease)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
