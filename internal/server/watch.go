package server

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/sign"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// watchStore is what the watcher needs from the store.
type watchStore interface {
	ListRegistries(ctx context.Context) ([]store.Registry, error)
	Repositories(ctx context.Context, registryID int64) ([]string, error)
	Image(ctx context.Context, digest string) (store.Image, error)
	EnqueueJobOnce(ctx context.Context, kind string, payload []byte, runAfter time.Time) (int64, bool, error)
	EnqueueSlotJob(ctx context.Context, kind string, payload []byte) (int64, bool, error)
	SetTag(ctx context.Context, repository, tag, digest string) error
	PruneTags(ctx context.Context, repository string, keep []string) (int, error)
	TouchImage(ctx context.Context, digest string) error
	ListApplications(ctx context.Context) ([]store.Application, error)
	AttachedArtifact(ctx context.Context, repository, source string) (string, error)
	ReplaceAttachments(ctx context.Context, repository, source string, items []store.Attachment) error
	PruneAttachments(ctx context.Context, repository string, keep []string) (int, error)
}

// watcher polls the registered registries and queues a scan of every
// digest a tag points at that the store does not know; signatures,
// attestations and SBOMs are attached to their image instead (attach.go).
type watcher struct {
	store    watchStore
	log      *slog.Logger
	interval time.Duration
	insecure bool
	keychain authn.Keychain // nil: the Docker config
	// keys verify the signatures and attestations found (the server's
	// signing key's public half); nil: they are listed, not verified.
	keys []crypto.PublicKey
	// transport makes the registry requests (the egress policy); nil:
	// go-containerregistry's default.
	transport http.RoundTripper
}

// JobPoll is the kind of the job that polls the registered registries.
const JobPoll = "poll"

// pollSlot is the payload of the poll job of the interval t falls in.
type pollSlot struct {
	Slot time.Time `json:"slot"`
}

// Run queues a poll job at start and then every interval until ctx is
// done; a scan worker of any replica claims and runs it (runPoll). The
// payload names the interval's slot: replicas that tick in the same slot
// queue one poll, and a slot that already ran is not queued again by a
// replica that ticks late (EnqueueSlotJob: the slot is a key unique for
// all time, claimed by one insert), so each poll runs once however many
// replicas watch.
func (w *watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		err := w.schedule(ctx, time.Now())
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return fmt.Errorf("watching registries: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// schedule queues the poll job of now's slot unless one was ever queued:
// one atomic insert, no look first (a look and an insert are two steps
// another replica's whole poll can run between).
func (w *watcher) schedule(ctx context.Context, now time.Time) error {
	payload, _ := json.Marshal(pollSlot{Slot: now.UTC().Truncate(w.interval)})
	_, _, err := w.store.EnqueueSlotJob(ctx, JobPoll, payload)
	return err
}

// runPoll is the poll job: a registry that cannot be reached is logged and
// skipped; only a failing store fails the job.
func (w *watcher) runPoll(ctx context.Context) error {
	if err := w.poll(ctx); err != nil {
		return fmt.Errorf("watching registries: %w", err)
	}
	return nil
}

// poll polls every registered registry once: repositories, tags,
// digests; queues scans of new digests, moves tags, prunes deleted ones.
func (w *watcher) poll(ctx context.Context) error {
	regs, err := w.store.ListRegistries(ctx)
	if err != nil {
		return err
	}
	for _, reg := range regs {
		if err := w.pollRegistry(ctx, reg); err != nil {
			return err
		}
	}
	return nil
}

// isRepositoryGlob reports whether a configured repository is a pattern
// (store.MatchRepository's globs) rather than a name.
func isRepositoryGlob(repo string) bool {
	return strings.ContainsAny(repo, "*?[")
}

// watchedRepositories is what a poll of a registry registered with the
// repositories configured reads, given its catalog: the whole catalog when
// none is configured; else each configured name, and the catalog's names
// that a configured glob matches. Sorted, without duplicates.
func watchedRepositories(configured, catalog []string) []string {
	if len(configured) == 0 {
		out := slices.Clone(catalog)
		slices.Sort(out)
		return slices.Compact(out)
	}
	var out, globs []string
	for _, c := range configured {
		if isRepositoryGlob(c) {
			globs = append(globs, c)
		} else {
			out = append(out, c)
		}
	}
	for _, name := range catalog {
		if slices.ContainsFunc(globs, func(g string) bool { return store.MatchRepository(g, name) }) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// remoteOptions are the options of the watcher's registry requests: its
// keychain (the Docker config when nil) and transport (the egress policy).
func (w *watcher) remoteOptions(ctx context.Context) []remote.Option {
	kc := w.keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
	if w.transport != nil {
		ropts = append(ropts, remote.WithTransport(w.transport))
	}
	return ropts
}

// remoteErr marks a registry-side failure: logged, not fatal.
type remoteErr struct{ error }

func (w *watcher) pollRegistry(ctx context.Context, reg store.Registry) error {
	log := w.log.With("registry", reg.Name)
	host, plain, err := api.RegistryHost(reg.URL)
	if err != nil {
		log.Warn("skipping registry", "err", err)
		return nil
	}
	var nopts []name.Option
	if plain || w.insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.NewRegistry(host, nopts...)
	if err != nil {
		log.Warn("skipping registry", "err", err)
		return nil
	}
	ropts := w.remoteOptions(ctx)
	configured, err := w.store.Repositories(ctx, reg.ID)
	if err != nil {
		return err
	}
	repos := configured
	// The catalog only when the registration asks for it: no list (the
	// whole catalog) or a glob (the catalog's matching names). A list of
	// names is all that is watched, whatever else the registry holds.
	if len(configured) == 0 || slices.ContainsFunc(configured, isRepositoryGlob) {
		cat, err := remote.Catalog(ctx, r, ropts...)
		if err != nil && ctx.Err() == nil {
			log.Warn("no catalog; polling the configured repositories only", "err", err)
		}
		repos = watchedRepositories(configured, cat)
	}
	// End-of-life applications are no longer scanned: skip the
	// repositories their patterns own (labels are known only after a scan).
	apps, err := w.store.ListApplications(ctx)
	if err != nil {
		return err
	}
	for _, repoName := range repos {
		if a := store.RepositoryOwner(apps, r.Name()+"/"+repoName); a != nil && a.Lifecycle == store.LifecycleEndOfLife {
			log.Debug("skipping the repository of an end-of-life application", "repository", repoName, "application", a.Name)
			continue
		}
		err := w.pollRepository(ctx, r, repoName, nopts, ropts, log)
		var re remoteErr
		if errors.As(err, &re) {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("polling repository failed", "repository", repoName, "err", re.error)
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *watcher) pollRepository(ctx context.Context, r name.Registry, repoName string, nopts []name.Option, ropts []remote.Option, log *slog.Logger) error {
	repo, err := name.NewRepository(r.Name()+"/"+repoName, nopts...)
	if err != nil {
		return remoteErr{err}
	}
	tags, err := remote.List(repo, ropts...)
	if err != nil {
		return remoteErr{fmt.Errorf("listing tags: %w", err)}
	}
	var imageTags, artifactTags []string
	for _, tag := range tags {
		d, err := remote.Head(repo.Tag(tag), ropts...)
		if err != nil {
			if ctx.Err() != nil {
				return remoteErr{ctx.Err()}
			}
			// One bad tag does not hide the others.
			log.Warn("resolving tag failed", "repository", repoName, "tag", tag, "err", err)
			continue
		}
		digest := d.Digest.String()
		if subject, kind, ok := sign.ArtifactTag(tag); ok {
			artifactTags = append(artifactTags, tag)
			if err := w.attach(ctx, repo, tag, digest, subject, kind, log); err != nil {
				return err
			}
			continue
		}
		isImage, err := w.consider(ctx, repo, tag, d, ropts, log)
		if err != nil {
			return err
		}
		if !isImage {
			artifactTags = append(artifactTags, tag)
			continue
		}
		imageTags = append(imageTags, tag)
		if err := w.store.SetTag(ctx, repo.Name(), tag, digest); err != nil {
			return err
		}
	}
	// Tags deleted from the registry stop pointing at their digests.
	if n, err := w.store.PruneTags(ctx, repo.Name(), imageTags); err != nil {
		return err
	} else if n > 0 {
		log.Info("tags deleted from the registry", "repository", repoName, "count", n)
	}
	if _, err := w.store.PruneAttachments(ctx, repo.Name(), artifactTags); err != nil {
		return err
	}
	return nil
}

// consider queues a scan of the digest d that repo's tag names, unless the
// store knows the digest, or a scan of exactly that reference is already
// queued or running (queued by an earlier poll, a notification or another
// replica), or the manifest is a signature, attestation, SBOM or other
// artifact (sign.ArtifactKind), which is attached to its subject instead.
// It reports whether the tag names an image.
func (w *watcher) consider(ctx context.Context, repo name.Repository, tag string, d *v1.Descriptor, ropts []remote.Option, log *slog.Logger) (bool, error) {
	digest := d.Digest.String()
	_, err := w.store.Image(ctx, digest)
	switch {
	case err == nil:
		return true, w.store.TouchImage(ctx, digest) // last seen: now
	case !errors.Is(err, store.ErrNotFound):
		return false, err
	}
	if known, err := w.store.AttachedArtifact(ctx, repo.Name(), tag); err != nil || known == digest {
		return false, err
	}
	if !d.MediaType.IsIndex() {
		kind, subject, err := artifactManifest(repo.Digest(digest), ropts)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("reading manifest failed", "repository", repo.Name(), "tag", tag, "err", err)
			}
			return false, nil // neither scanned nor attached until it can be read
		}
		if kind != "" {
			return false, w.attach(ctx, repo, tag, digest, subject, kind, log)
		}
	}
	ref := repo.Digest(digest).Name()
	payload, _ := json.Marshal(api.ScanPayload{Image: ref})
	id, queued, err := w.store.EnqueueJobOnce(ctx, api.JobScan, payload, time.Time{})
	if err != nil || !queued {
		return true, err
	}
	log.Info("new digest; scan queued", "image", ref, "job", id)
	return true, nil
}
