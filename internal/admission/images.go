package admission

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/singleflight"

	"github.com/bulwark-sec/bulwark/internal/sign"
)

// How long first-sight results are kept.
const (
	// negativeTTL keeps a failed verification, so a crash-looping pod does
	// not hit the registry on every retry, but a fresh certification is
	// seen soon.
	negativeTTL = 5 * time.Second
	// tagTTL keeps a tag resolved from the registry (tags from the feed
	// are kept until the feed says otherwise).
	tagTTL = 30 * time.Second
)

// cache holds what the webhook knows about images. Every field is
// guarded by mu.
type cache struct {
	mu sync.RWMutex
	// verified maps repository@digest to the time this webhook verified
	// it under the trust policy.
	verified map[string]time.Time
	// status maps a digest to the feed's certification.
	status map[string]feedEntry
	// tags maps repository:tag to a digest, from the feed.
	tags map[string]string
	// resolved maps repository:tag to a digest resolved from the registry.
	resolved map[string]expiring
	// failed maps repository@digest to a failed verification.
	failed map[string]failure
	// gen counts changes of verified, status and tags (what a snapshot
	// holds).
	gen uint64
}

type expiring struct {
	digest  string
	expires time.Time
}

type failure struct {
	reason  string
	expires time.Time
}

func newCache() *cache {
	return &cache{verified: map[string]time.Time{}, status: map[string]feedEntry{}, tags: map[string]string{},
		resolved: map[string]expiring{}, failed: map[string]failure{}}
}

// imageVerdict is the outcome for one image reference.
type imageVerdict struct {
	// Digest is the digest the image resolved to ("" when it did not).
	Digest string
	// Pinned is repository@digest.
	Pinned string
	// Problem and Fix are set when the image is not admitted.
	Problem, Fix string
	// Undecided is set when nothing could be decided (the failure policy
	// applies).
	Undecided bool
}

// imageChecker decides images from the cache, resolving and verifying
// on first sight.
type imageChecker struct {
	cfg     *Config
	cache   *cache
	reg     sign.Options
	now     func() time.Time
	group   singleflight.Group
	metrics *metrics
	// feedUnknown reports that a server is configured and neither a feed
	// poll has succeeded since start nor a snapshot was loaded: the
	// revocations are unknown. nil means never.
	feedUnknown func() bool
}

// parse parses an image as Kubernetes resolves it (Docker Hub default).
func (ic *imageChecker) parse(image string) (name.Reference, error) {
	var opts []name.Option
	if ic.reg.Insecure {
		opts = append(opts, name.Insecure)
	}
	return name.ParseReference(image, opts...)
}

// resolve returns the digest image names: itself when pinned, else from
// the feed's tags, else from a recent registry resolution, else (when
// online) a registry HEAD bounded by ctx.
func (ic *imageChecker) resolve(ctx context.Context, ref name.Reference, online bool) (string, error) {
	if d, ok := ref.(name.Digest); ok {
		return d.DigestStr(), nil
	}
	key := ref.Context().Name() + ":" + ref.Identifier()
	ic.cache.mu.RLock()
	d, ok := ic.cache.tags[key]
	r, rok := ic.cache.resolved[key]
	ic.cache.mu.RUnlock()
	if ok {
		return d, nil
	}
	if rok && ic.now().Before(r.expires) {
		return r.digest, nil
	}
	if !online {
		return "", errOffline
	}
	v, err, _ := ic.group.Do("tag "+key, func() (any, error) {
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ic.cfg.VerifyBudget)
		defer cancel()
		ic.metrics.registryCalls.Add(1)
		desc, err := remote.Head(ref, ic.remoteOptions(bctx)...)
		if err != nil {
			return "", err
		}
		d := desc.Digest.String()
		ic.cache.mu.Lock()
		ic.cache.resolved[key] = expiring{digest: d, expires: ic.now().Add(tagTTL)}
		ic.cache.mu.Unlock()
		return d, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

var errOffline = errors.New("offline")

func (ic *imageChecker) remoteOptions(ctx context.Context) []remote.Option {
	ro := []remote.Option{remote.WithContext(ctx)}
	if ic.reg.Keychain != nil {
		ro = append(ro, remote.WithAuthFromKeychain(ic.reg.Keychain))
	}
	if ic.reg.Transport != nil {
		ro = append(ro, remote.WithTransport(ic.reg.Transport))
	}
	return ro
}

// check decides one image. lk.online allows registry calls (first
// sight); ctx bounds how long the caller waits.
func (ic *imageChecker) check(ctx context.Context, image string, lk lookup) imageVerdict {
	online := lk.online
	if strings.TrimSpace(image) == "" {
		return imageVerdict{Problem: "has no image", Fix: "set image: registry/repository@sha256:... (or a certified tag)"}
	}
	ref, err := ic.parse(image)
	if err != nil {
		return imageVerdict{Problem: fmt.Sprintf("is not a valid image reference (%v)", err), Fix: "write the image as registry/repository:tag or registry/repository@sha256:..."}
	}
	repo := ref.Context().Name()
	d, err := ic.resolve(ctx, ref, online)
	switch {
	case errors.Is(err, errOffline):
		return imageVerdict{Problem: "is not pinned to a digest", Fix: fmt.Sprintf("use %s@sha256:... (bulwark admission pins certified tags when the mutating webhook is installed)", repo)}
	case err != nil:
		return imageVerdict{Undecided: true, Problem: fmt.Sprintf("could not be resolved to a digest within %s (%v)", ic.cfg.VerifyBudget, shortErr(err)),
			Fix: "check that the registry is reachable from the webhook, or use a certified digest (repository@sha256:...)"}
	}
	v := imageVerdict{Digest: d, Pinned: repo + "@" + d}
	certify := fmt.Sprintf("run \"bulwark certify %s --key ...\" or use a certified digest", image)
	ic.cache.mu.RLock()
	st, known := ic.cache.status[d]
	_, verified := ic.cache.verified[v.Pinned]
	fail, failed := ic.cache.failed[v.Pinned]
	ic.cache.mu.RUnlock()
	if known && st.Status != statusCertified {
		v.Problem = fmt.Sprintf("%s is %s by the control plane", shortDigest(d), strings.ReplaceAll(st.Status, "_", " "))
		if st.Reason != "" {
			v.Problem += " (" + st.Reason + ")"
		}
		v.Fix = "rebuild or roll back to a certified digest (bulwark server lists rollback targets)"
		return v
	}
	if verified {
		ic.metrics.cacheHits.Add(1)
		return v
	}
	if failed && ic.now().Before(fail.expires) {
		v.Problem, v.Fix = "is not certified ("+fail.reason+")", certify
		return v
	}
	if lk.feedGate && ic.feedUnknown != nil && ic.feedUnknown() {
		// A signature alone does not say the digest is not revoked: a
		// fresh webhook that cannot reach the server must not admit what
		// the server revoked. The failure policy decides.
		v.Undecided = true
		v.Problem = "is not in the cache of certified digests, and the certification feed has not been reached since the webhook started, so revocations are unknown"
		v.Fix = "check that the webhook reaches the server (" + ic.cfg.Server.URL + "), or set server.cacheFile so a restarted webhook starts from the last feed state"
		return v
	}
	if !online {
		// Offline (bulwark check without --verify): a pinned digest is all
		// that can be decided.
		return v
	}
	ic.metrics.cacheMisses.Add(1)
	res := ic.group.DoChan("verify "+v.Pinned, func() (any, error) {
		return nil, ic.verify(ctx, v.Pinned)
	})
	var verr error
	select {
	case r := <-res:
		verr = r.Err
	case <-ctx.Done():
		verr = ctx.Err()
	}
	var ve *sign.VerificationError
	switch {
	case verr == nil:
		return v
	case errors.As(verr, &ve):
		v.Problem, v.Fix = "is not certified ("+reason(ve)+")", certify
	default:
		v.Undecided = true
		v.Problem = fmt.Sprintf("could not be verified within %s (%s) and is not in the cache of certified digests", ic.cfg.VerifyBudget, shortErr(verr))
		v.Fix = "check that the registry is reachable from the webhook, or " + certify
	}
	return v
}

// verify checks repository@digest under the trust policy within the
// budget, detached from the request so that a slow registry still fills
// the cache for the next request, and caches the outcome.
func (ic *imageChecker) verify(ctx context.Context, pinned string) error {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ic.cfg.VerifyBudget)
	defer cancel()
	ic.metrics.registryCalls.Add(1)
	want := sign.Requirements{MaxDecisionAge: ic.cfg.MaxDecisionAge, PolicyDigest: ic.cfg.PolicyDigest, Now: ic.now()}
	_, err := ic.cfg.TrustPolicy.Verify(bctx, pinned, want, ic.reg)
	ic.cache.mu.Lock()
	defer ic.cache.mu.Unlock()
	var ve *sign.VerificationError
	switch {
	case err == nil:
		if _, ok := ic.cache.verified[pinned]; !ok {
			ic.cache.gen++
		}
		ic.cache.verified[pinned] = ic.now()
		delete(ic.cache.failed, pinned)
	case errors.As(err, &ve):
		ic.cache.failed[pinned] = failure{reason: reason(ve), expires: ic.now().Add(negativeTTL)}
	}
	return err
}

// shortErr keeps an error message on one short line.
func shortErr(err error) string {
	s := err.Error()
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// reason is a verification failure's reason without the "trust policy
// FILE line 0: " prefix of trust policies built from inline keys.
func reason(ve *sign.VerificationError) string {
	if i := strings.Index(ve.Reason, " line 0: "); i >= 0 && strings.HasPrefix(ve.Reason, "trust policy ") {
		return "under the configured keys: " + ve.Reason[i+len(" line 0: "):]
	}
	return ve.Reason
}
