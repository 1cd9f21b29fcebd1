package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/assess"
	"github.com/bulwark-sec/bulwark/internal/catalog"
	"github.com/bulwark-sec/bulwark/internal/failpoint"
	"github.com/bulwark-sec/bulwark/internal/image"
	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// worker claims scan jobs and runs them, one at a time.
type worker struct {
	name     string
	store    Store
	metrics  *api.Metrics
	log      *slog.Logger
	cacheDir string
	insecure bool
	limits   image.Limits
	poll     time.Duration
	keychain authn.Keychain
	advisory match.Source // nil: no matching
	judgment *judgment
	// skip, when set, reports whether an image of repository with labels
	// (nil before its config is read) is not to be scanned: its
	// application is end-of-life.
	skip func(ctx context.Context, repository string, labels map[string]string) (bool, error)
	// artifact reports whether a scan job's reference is a signature,
	// attestation, SBOM or other artifact, attached or left to the
	// watcher instead of scanned (the watcher's artifactJob); nil: every
	// reference is scanned.
	artifact func(ctx context.Context, ref name.Reference, log *slog.Logger) (bool, error)
	// runPoll runs a poll job (the watcher's); nil: poll jobs are not claimed.
	runPoll func(ctx context.Context) error

	// advisoryStatus names the advisory data a decision is made with, and
	// whether it can back one; nil: not recorded.
	advisoryStatus func(ctx context.Context) (api.AdvisoryStatus, error)
	// transport makes the registry requests (the egress policy); nil:
	// go-containerregistry's default.
	transport http.RoundTripper
}

// Run claims and runs jobs until ctx is done. A failing scan fails its job
// (retried with backoff by the store), not the server; a store that cannot
// be read is fatal.
func (w *worker) Run(ctx context.Context) error {
	kinds := []string{api.JobScan}
	if w.runPoll != nil {
		kinds = append(kinds, JobPoll)
	}
	return store.RunJobs(ctx, w.store, w.name, kinds, w.poll, func(ctx context.Context, j *store.Job) error {
		if j.Kind == api.JobScan {
			w.metrics.JobsClaimed.Add(1)
		}
		return w.runJob(ctx, j)
	})
}

// runJob scans and completes or fails j. It returns an error only when the
// job's outcome cannot be recorded.
func (w *worker) runJob(ctx context.Context, j *store.Job) error {
	log := w.log.With("job", j.ID, "kind", j.Kind, "attempt", j.Attempts)
	start := time.Now()
	var digest string
	var err error
	switch j.Kind {
	case JobPoll:
		err = w.runPoll(ctx)
	default:
		digest, err = w.scan(ctx, j)
	}
	// The outcome is recorded even when shutdown interrupted the scan, so
	// the job is queued again now rather than after the stale lease.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	scan := j.Kind == api.JobScan // the job metrics count scans
	if err != nil {
		err = image.RegistryError(err) // the job's error is shown in the API: no Go map syntax
		if scan {
			w.metrics.JobsFailed.Add(1)
		}
		log.Warn("job failed", "err", err, "duration", time.Since(start))
		if ferr := w.store.FailJob(rctx, j, err); ferr != nil && !errors.Is(ferr, store.ErrClaimLost) {
			return fmt.Errorf("recording failure of job %d: %w", j.ID, ferr)
		}
		return nil
	}
	if cerr := w.store.CompleteJob(rctx, j); cerr != nil {
		if errors.Is(cerr, store.ErrClaimLost) {
			log.Warn("job was claimed by another worker meanwhile", "err", cerr)
			return nil
		}
		return fmt.Errorf("completing job %d: %w", j.ID, cerr)
	}
	if scan {
		w.metrics.JobsCompleted.Add(1)
	}
	log.Info("job done", "digest", digest, "duration", time.Since(start))
	return nil
}

// scan runs one scan job: open the image, assess it (inventory, findings,
// secrets, policy decision), store image, inventory, tag and decision, and
// move its certification. Every step is idempotent, so a job run twice
// after a crash stores the same result and certifies once.
func (w *worker) scan(ctx context.Context, j *store.Job) (string, error) {
	var p api.ScanPayload
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		return "", fmt.Errorf("decoding scan payload: %w", err)
	}
	ref, err := name.ParseReference(p.Image)
	if err != nil {
		return "", fmt.Errorf("parsing reference %q: %w", p.Image, err)
	}
	repo := ref.Context().Name()
	endOfLife := func(labels map[string]string) (bool, error) {
		if w.skip == nil {
			return false, nil
		}
		skip, err := w.skip(ctx, repo, labels)
		if skip {
			w.log.Info("not scanning: the application is end-of-life", "image", p.Image)
		}
		return skip, err
	}
	// By repository before anything is fetched, by label once the config
	// is read and before any layer is.
	if skip, err := endOfLife(nil); err != nil || skip {
		return "", err
	}
	if w.artifact != nil {
		if isArtifact, err := w.artifact(ctx, ref, w.log.With("job", j.ID)); err != nil || isArtifact {
			return "", err
		}
	}
	opts := assess.Options{Advisories: w.advisory, Repository: repo}
	opts.Image = image.Options{CacheDir: w.cacheDir, Insecure: w.insecure, Keychain: w.keychain, Limits: w.limits, Transport: w.transport}
	// One streaming pass per layer, results cached per diffID under the
	// cache quota: no decompressed layer is kept, a shared base is read once.
	if opts.Image, err = opts.Streaming(); err != nil {
		return "", err
	}
	opts.Image.Digests = layerfs.DigestExecutables // hashed in the stream: the allowlist file table (filetable.go)
	img, err := image.Open(ctx, "registry:"+ref.Name(), opts.Image)
	if err != nil {
		return "", err // names the image already
	}
	defer img.Close()
	w.metrics.LayersStreamed.Add(int64(img.Stats.LayersStreamed))
	w.metrics.LayersFromCache.Add(int64(img.Stats.LayersFromCache))
	w.log.Debug("image read", "job", j.ID, "image", ref.Name(), "layersStreamed", img.Stats.LayersStreamed, "layersFromCache", img.Stats.LayersFromCache)
	if img.Config != nil {
		if skip, err := endOfLife(img.Config.Config.Labels); err != nil || skip {
			return "", err
		}
	}
	src := img.Source
	if src.Digest == "" {
		return "", fmt.Errorf("opening %s: no manifest digest", ref.Name())
	}
	if err := hashExecutables(ctx, img); err != nil { // the file table agents' allowlists come from (filetable.go)
		return "", err
	}
	opts.Catalog = catalog.Options{Files: true}
	if w.judgment != nil {
		opts.Policy = w.judgment.policy
	}
	// The advisory data as the match is about to see it (an import that
	// lands during the match is newer than what is recorded, never older).
	var adv api.AdvisoryStatus
	if w.advisoryStatus != nil {
		if adv, err = w.advisoryStatus(ctx); err != nil {
			return "", err
		}
	}
	a, err := assess.Run(ctx, img, opts)
	if err != nil {
		return "", fmt.Errorf("assessing %s: %w", ref.Name(), err)
	}
	if a.Decision != nil && w.advisoryStatus != nil {
		withAdvisories(a.Decision, adv)
	}
	rec := store.Image{
		Digest:       src.Digest,
		Repository:   repo,
		ConfigDigest: src.ConfigID,
		LastScanned:  time.Now().UTC(),
		Findings:     severityCounts(a.Scan),
		BaseImage:    baseImage(a.Decision),
	}
	if img.Config != nil {
		rec.Created = img.Config.Created.Time
		if rec.BaseImage == "" {
			rec.BaseImage = labeledBase(img.Config.Config.Labels)
		}
		if rec.Config, err = json.Marshal(img.Config); err != nil {
			return "", fmt.Errorf("encoding the config of %s: %w", ref.Name(), err)
		}
	}
	for _, l := range src.Layers {
		rec.Size += l.Size
	}
	if err := w.store.PutImage(ctx, rec); err != nil {
		return "", err
	}
	files := takeFileTable(a.SBOM)
	if err := w.store.PutInventory(ctx, src.Digest, a.SBOM, nil); err != nil {
		return "", err
	}
	if err := w.storeFileTable(ctx, src.Digest, files); err != nil {
		return "", err
	}
	if tag, ok := ref.(name.Tag); ok {
		if err := w.store.SetTag(ctx, repo, tag.TagStr(), src.Digest); err != nil {
			return "", err
		}
	}
	failpoint.Hit("scan.stored")
	if w.judgment != nil && a.Decision != nil {
		if err := w.judgment.certify(ctx, ref.Context().Digest(src.Digest), repo, a); err != nil {
			return "", fmt.Errorf("certifying %s: %w", ref.Name(), err)
		}
	}
	return src.Digest, nil
}
