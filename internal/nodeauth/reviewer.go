package nodeauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/bulwark-sec/bulwark/internal/kube"
)

// Defaults of Config.
const (
	DefaultAudience  = "bulwark"
	MaxCacheFor      = 60 * time.Second
	DefaultMaxCached = 10_000
	// maxConcurrent bounds the reviews in flight: the tokens are
	// unauthenticated until reviewed, so a flood of them must not become a
	// flood on the apiserver.
	maxConcurrent = 16
	reviewTimeout = 10 * time.Second
	// maxTokenBytes bounds what is sent for review (a projected token is
	// about 1 KB).
	maxTokenBytes = 16 << 10
)

// The extra keys the apiserver sets on the user of a pod-bound service
// account token (k8s.io/apiserver/pkg/authentication/serviceaccount; the
// node's since 1.30, GA and always on since 1.32).
const (
	ExtraNodeName = "authentication.kubernetes.io/node-name"
	ExtraPodName  = "authentication.kubernetes.io/pod-name"
	ExtraPodUID   = "authentication.kubernetes.io/pod-uid"
)

// Config configures a Reviewer.
type Config struct {
	// Client calls the cluster's apiserver; its identity needs create on
	// tokenreviews (system:auth-delegator) and get on pods.
	Client *kube.Client
	// Audience is the audience the tokens must be for ("": bulwark).
	Audience string
	// ServiceAccount is the agents' service account, NAMESPACE/NAME. Only
	// its tokens are accepted; there is no default.
	ServiceAccount string
	// CacheFor is how long a successful review is reused (0 or more than
	// 60 s: 60 s); never past the token's expiry.
	CacheFor time.Duration
	// MaxCached bounds the cache (0: 10000 tokens).
	MaxCached int
}

// Agent is an authenticated agent: the node it speaks for and the pod and
// service account its token is bound to.
type Agent struct {
	Node           string
	Namespace      string // of the service account and the pod
	ServiceAccount string
	Pod, PodUID    string
}

// Actor is how the audit log names the agent.
func (a Agent) Actor() string {
	return fmt.Sprintf("serviceaccount:%s/%s pod:%s/%s node:%s", a.Namespace, a.ServiceAccount, a.Namespace, a.Pod, a.Node)
}

// RefusedError is a token that does not authenticate an agent (401).
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "service account token refused: " + e.Reason }

// UnavailableError is a review that could not be made (503): the cluster
// is unreachable or refused the server's own calls.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string {
	return "reviewing the service account token with the cluster: " + e.Err.Error()
}
func (e *UnavailableError) Unwrap() error { return e.Err }

func refused(format string, a ...any) error { return &RefusedError{Reason: fmt.Sprintf(format, a...)} }

// Reviewer authenticates agents' projected service account tokens.
type Reviewer struct {
	client       *kube.Client
	audience     string
	saNS, saName string
	user         string // system:serviceaccount:NS:NAME
	cacheFor     time.Duration
	sem          chan struct{}
	sources      *sources // reviews in flight by client address (sources.go)
	now          func() time.Time

	cache  *cache
	counts counters
}

// New checks cfg and returns a Reviewer.
func New(cfg Config) (*Reviewer, error) {
	if cfg.Client == nil {
		return nil, errors.New("agent service account tokens need a cluster (--kubeconfig)")
	}
	ns, name, ok := strings.Cut(cfg.ServiceAccount, "/")
	if !ok || ns == "" || name == "" || strings.ContainsAny(name, "/:") || strings.Contains(ns, ":") {
		return nil, fmt.Errorf("agent service account %q: want NAMESPACE/NAME", cfg.ServiceAccount)
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.CacheFor <= 0 || cfg.CacheFor > MaxCacheFor {
		cfg.CacheFor = MaxCacheFor
	}
	if cfg.MaxCached <= 0 {
		cfg.MaxCached = DefaultMaxCached
	}
	return &Reviewer{client: cfg.Client, audience: cfg.Audience, saNS: ns, saName: name,
		user: "system:serviceaccount:" + ns + ":" + name, cacheFor: cfg.CacheFor,
		sem: make(chan struct{}, maxConcurrent), sources: newSources(), now: time.Now, cache: newCache(cfg.MaxCached)}, nil
}

// Authenticate returns the agent token authenticates, from the cache or
// a review: a *RefusedError when the cluster does not vouch for it, an
// *UnavailableError when the cluster cannot say. source is where the
// token came from (the client's address): at most perSource reviews of
// one source are in flight (sources.go).
func (r *Reviewer) Authenticate(ctx context.Context, token, source string) (Agent, error) {
	a, cached, err := r.authenticate(ctx, token, source)
	r.counts.count(cached, err)
	return a, err
}

func (r *Reviewer) authenticate(ctx context.Context, token, source string) (_ Agent, cached bool, _ error) {
	key := sha256.Sum256([]byte(token))
	now := r.now()
	if a, ok := r.cache.get(key, now); ok {
		return a, true, nil
	}
	a, err := r.reviewed(ctx, token, source, key, now)
	return a, false, err
}

// reviewed authenticates token with the cluster and caches the answer.
func (r *Reviewer) reviewed(ctx context.Context, token, source string, key [32]byte, now time.Time) (Agent, error) {
	// Cheap refusals before asking the cluster, from the token's own
	// (unverified) claims: never a reason to accept, only to not ask.
	if len(token) > maxTokenBytes {
		return Agent{}, refused("the token is %d bytes, more than %d", len(token), maxTokenBytes)
	}
	c, err := parseClaims(token)
	if err != nil {
		return Agent{}, refused("%v", err)
	}
	if !c.hasAudience(r.audience) {
		return Agent{}, refused("the token is not for audience %q", r.audience)
	}
	if c.Exp == 0 {
		return Agent{}, refused("the token has no expiry: not a projected token")
	}
	exp := time.Unix(c.Exp, 0)
	if !exp.After(now) {
		return Agent{}, refused("the token expired at %s", exp.UTC().Format(time.RFC3339))
	}

	// The wait for a slot counts in the review's time: a flood of tokens to
	// review makes agents wait at most reviewTimeout, then 503. One source
	// holds at most perSource slots (sources.go).
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	if err := r.sources.enter(ctx, source); err != nil {
		return Agent{}, &UnavailableError{Err: err}
	}
	defer r.sources.leave(source)
	select {
	case r.sem <- struct{}{}:
		defer func() { <-r.sem }()
	case <-ctx.Done():
		return Agent{}, &UnavailableError{Err: fmt.Errorf("waiting for one of the %d review slots: %w", maxConcurrent, ctx.Err())}
	}
	a, err := r.review(ctx, token)
	if err != nil {
		return Agent{}, err
	}
	if err := r.checkPod(ctx, a); err != nil {
		return Agent{}, err
	}
	until := r.now().Add(r.cacheFor)
	if exp.Before(until) {
		until = exp
	}
	r.cache.put(key, a, until, r.now())
	return a, nil
}

// review asks the cluster who token is.
func (r *Reviewer) review(ctx context.Context, token string) (Agent, error) {
	req := authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{r.audience}}}
	req.APIVersion, req.Kind = "authentication.k8s.io/v1", "TokenReview"
	var got authnv1.TokenReview
	if err := r.client.Create(ctx, "/apis/authentication.k8s.io/v1/tokenreviews", &req, &got); err != nil {
		return Agent{}, unavailable("creating a TokenReview", err)
	}
	st := got.Status
	if !st.Authenticated {
		why := st.Error
		if why == "" {
			why = "not authenticated"
		}
		return Agent{}, refused("the cluster does not authenticate it: %s", why)
	}
	if !slices.Contains(st.Audiences, r.audience) {
		return Agent{}, refused("the cluster authenticates it for audiences %q, not %q", st.Audiences, r.audience)
	}
	if st.User.Username != r.user {
		return Agent{}, refused("it is %q's, not the agents' service account %s/%s", st.User.Username, r.saNS, r.saName)
	}
	one := func(key string) (string, error) {
		v := st.User.Extra[key]
		if len(v) != 1 || v[0] == "" {
			return "", refused("it is bound to no pod on a node (%s: %q)", key, []string(v))
		}
		return v[0], nil
	}
	a := Agent{Namespace: r.saNS, ServiceAccount: r.saName}
	var err error
	if a.Node, err = one(ExtraNodeName); err != nil {
		return Agent{}, err
	}
	if a.Pod, err = one(ExtraPodName); err != nil {
		return Agent{}, err
	}
	if a.PodUID, err = one(ExtraPodUID); err != nil {
		return Agent{}, err
	}
	return a, nil
}

// checkPod reads the token's pod: it must exist, be the same pod (UID), run
// the agents' service account and be on the token's node. A token of a
// deleted pod stays valid to the apiserver until a TokenReview notices;
// this read makes the refusal immediate (within the cache's lifetime).
func (r *Reviewer) checkPod(ctx context.Context, a Agent) error {
	var p corev1.Pod
	path := "/api/v1/namespaces/" + url.PathEscape(a.Namespace) + "/pods/" + url.PathEscape(a.Pod)
	if err := r.client.Get(ctx, path, &p); err != nil {
		if kube.IsNotFound(err) {
			return refused("its pod %s/%s no longer exists", a.Namespace, a.Pod)
		}
		return unavailable("reading pod "+a.Namespace+"/"+a.Pod, err)
	}
	switch {
	case string(p.UID) != a.PodUID:
		return refused("its pod %s/%s was replaced (UID %s, the token's %s)", a.Namespace, a.Pod, p.UID, a.PodUID)
	case p.Spec.ServiceAccountName != a.ServiceAccount:
		return refused("its pod %s/%s runs service account %q", a.Namespace, a.Pod, p.Spec.ServiceAccountName)
	case p.Spec.NodeName != a.Node:
		return refused("its pod %s/%s is on node %q, the token names %q", a.Namespace, a.Pod, p.Spec.NodeName, a.Node)
	}
	return nil
}

// unavailable is a failed call to the cluster: every failure is the
// cluster's or the server's configuration (RBAC), never the agent's.
func unavailable(doing string, err error) error {
	var se *kube.StatusError
	if errors.As(err, &se) && (se.Code == http.StatusUnauthorized || se.Code == http.StatusForbidden) {
		err = fmt.Errorf("%w (the server's cluster identity needs create on tokenreviews and get on pods)", err)
	}
	return &UnavailableError{Err: fmt.Errorf("%s: %w", doing, err)}
}
