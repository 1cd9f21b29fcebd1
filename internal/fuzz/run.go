package fuzz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Defaults of Options.
const (
	DefaultMaxRequests = 1000
	DefaultSlow        = 2 * time.Second
	DefaultTimeout     = 10 * time.Second
	DefaultShrink      = 64
	// MaxResponseBody is how much of a response body is read and checked.
	MaxResponseBody = 4 << 20
)

// ErrHostNotAllowed: the target is neither a loopback address nor a host
// the document declares, and the caller did not allow it.
var ErrHostNotAllowed = errors.New("target host not allowed")

// ErrTargetUnreachable: the target refused the connection before it ever
// answered (nothing listens there); a target that answered and then
// stopped is a finding instead.
var ErrTargetUnreachable = errors.New("target not reachable")

// Options configure a campaign.
type Options struct {
	// Target is the base URL the document's paths are appended to.
	Target string
	// Auth are the headers that carry credentials ("Authorization",
	// "Bearer ..."). Reports never print their values.
	Auth []Pair
	Seed uint64
	// MaxRequests bounds the requests sent, shrinking and replays
	// included; zero means DefaultMaxRequests.
	MaxRequests int
	// Duration bounds the campaign's time; zero means no bound but
	// MaxRequests.
	Duration time.Duration
	// Rate bounds the requests per second; zero means no bound.
	Rate float64
	// Slow is the response time budget; zero means DefaultSlow.
	Slow time.Duration
	// Timeout bounds each request; zero means DefaultTimeout.
	Timeout time.Duration
	// AllowHosts are hosts (host or host:port) allowed besides loopback
	// and the document's servers.
	AllowHosts []string
	// Grants are the data classes an operation (its id, or "METHOD
	// /path") may return, besides its x-data-classes.
	Grants map[string][]string
	// Shrink bounds the requests spent shrinking one finding; zero means
	// DefaultShrink, negative none.
	Shrink int
	// Operations, when set, selects the operations fuzzed: those whose
	// operationId, "METHOD /path" or "METHOD /path operationId" it
	// matches ("^GET " for read-only, `^GET \S+ (list|read)` for
	// kube-apiserver's reads without its watches).
	Operations *regexp.Regexp
	// Params pin parameters by name: every request sends the value and
	// none mutates it.
	Params map[string]string
	// Secured treats every operation as secured (replayed without and
	// with garbage credentials), for documents that define a security
	// scheme but require it nowhere, as kube-apiserver's do.
	Secured bool
	// CurlArgs are written into every curl line after "curl -sS -i",
	// each shell-quoted: what the reproduction needs besides the request
	// ("--cacert", "ca.crt" for a target with a private CA).
	CurlArgs []string
	// Client sends the requests; nil means a client without redirects.
	// Give one with TLS settings (a CA, a client certificate) for an
	// https target.
	Client *http.Client
	Logger *slog.Logger
}

// Result is a campaign's outcome.
type Result struct {
	Target     string  `json:"target"`
	Seed       uint64  `json:"seed"`
	Operations int     `json:"operations"`
	Requests   int     `json:"requests"`
	Seconds    float64 `json:"seconds"`
	Stop       string  `json:"stop"` // "done", "max-requests" or "duration"
	// Statuses counts the answers by status code.
	Statuses map[int]int `json:"statuses"`
	// Coverage counts each operation's answers by status code: an
	// operation missing here was never answered.
	Coverage map[string]map[int]int `json:"coverage"`
	// TransportErrors counts the requests that got no answer (refused,
	// reset or timed-out connections, TLS failures).
	TransportErrors int       `json:"transportErrors"`
	Findings        []Finding `json:"findings"`
}

// Finding is a rule an operation tripped, with the shrunk request.
type Finding struct {
	Rule      string `json:"rule"`
	Severity  string `json:"severity"`
	Operation string `json:"operation"`
	Message   string `json:"message"`
	// Credentials the request was sent with: "configured", "none" or
	// "garbage".
	Credentials string  `json:"credentials"`
	Request     Request `json:"request"`
	// ShrinkSteps counts the reductions kept while shrinking.
	ShrinkSteps int    `json:"shrinkSteps"`
	Curl        string `json:"curl"`
}

// creds says which credentials a request carries.
type creds int

const (
	credsConfigured creds = iota
	credsNone
	credsGarbage
)

func (c creds) String() string { return [...]string{"configured", "none", "garbage"}[c] }

const garbageToken = "bulwark-fuzz-invalid-token"

// CheckTarget parses the target URL and refuses hosts that are neither
// loopback, declared by the document, nor allowed.
func CheckTarget(target string, declared, allow []string) (*url.URL, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("parsing target %q: want an http(s) URL", target)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || strings.EqualFold(host, "localhost") {
		return u, nil
	}
	for _, h := range slices.Concat(declared, allow) {
		if strings.EqualFold(h, u.Host) || strings.EqualFold(h, host) {
			return u, nil
		}
	}
	return nil, fmt.Errorf("checking target %q: %w (not loopback, not a server of the document; --allow-host %s to fuzz it)", target, ErrHostNotAllowed, host)
}

// Run fuzzes the target with spec's operations until every mutation was
// tried and the random phase used up the budget, or the budget ran out.
func Run(ctx context.Context, spec *Spec, opts Options) (*Result, error) {
	base, err := CheckTarget(opts.Target, spec.Hosts, opts.AllowHosts)
	if err != nil {
		return nil, err
	}
	if opts.Operations != nil || len(opts.Params) > 0 || opts.Secured {
		if spec, err = spec.selectOps(opts.Operations, opts.Params, opts.Secured); err != nil {
			return nil, err
		}
	}
	if opts.MaxRequests <= 0 {
		opts.MaxRequests = DefaultMaxRequests
	}
	if opts.Slow <= 0 {
		opts.Slow = DefaultSlow
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Shrink == 0 {
		opts.Shrink = DefaultShrink
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	c := &campaign{
		opts: opts, spec: spec, base: base, client: client,
		gen:   &generator{rng: newRand(opts.Seed), pool: map[string]string{}},
		chk:   &checker{slow: opts.Slow, grants: opts.Grants, sent: map[string]bool{}, schemaOpts: spec.schemaOpts},
		found: map[string]bool{},
		res:   &Result{Target: opts.Target, Seed: opts.Seed, Operations: len(spec.ops), Stop: "done", Statuses: map[int]int{}, Coverage: map[string]map[int]int{}},
		start: time.Now(),
	}
	for _, v := range spec.public {
		c.chk.sent[v] = true
	}
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
		defer cancel()
	}
	err = c.run(ctx)
	c.res.Requests = c.sent
	c.res.Seconds = time.Since(c.start).Seconds()
	if errors.Is(err, errBudget) || (err != nil && ctx.Err() != nil && opts.Duration > 0) {
		err = nil
	}
	if c.res.Findings == nil {
		c.res.Findings = []Finding{}
	}
	return c.res, err
}

// newRand is the campaign's random source: the same seed, the same
// campaign.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x62756c7761726b)) }

// errBudget stops a campaign whose budget ran out.
var errBudget = errors.New("budget used up")

type campaign struct {
	opts   Options
	spec   *Spec
	base   *url.URL
	client *http.Client
	gen    *generator
	chk    *checker
	found  map[string]bool
	res    *Result
	start  time.Time
	sent   int
}

func (c *campaign) run(ctx context.Context) error {
	// Valid requests first: they create the resources later requests use.
	// An operation that answered no 2xx gets a second valid request after
	// the others (its resource may come from a later PUT: a sub-resource),
	// and the DELETEs come after that.
	var again, deletes []*operation
	for _, op := range c.spec.ops {
		if op.Method == http.MethodDelete {
			deletes = append(deletes, op)
			continue
		}
		ex, err := c.validRequest(ctx, op, true)
		if err != nil {
			return err
		}
		if ex == nil || ex.status/100 != 2 {
			again = append(again, op)
		}
	}
	for _, op := range again {
		if _, err := c.validRequest(ctx, op, false); err != nil {
			return err
		}
	}
	for _, op := range deletes {
		if _, err := c.validRequest(ctx, op, true); err != nil {
			return err
		}
	}
	// Every mutation of every operation, operations taking turns.
	muts := make([][]mutation, len(c.spec.ops))
	for i, op := range c.spec.ops {
		muts[i] = mutations(op, c.gen)
		c.gen.rng.Shuffle(len(muts[i]), func(a, b int) { muts[i][a], muts[i][b] = muts[i][b], muts[i][a] })
	}
	for round := 0; ; round++ {
		any := false
		for i, op := range c.spec.ops {
			if round >= len(muts[i]) {
				continue
			}
			any = true
			r := c.gen.valid(op)
			muts[i][round].apply(&r)
			r.Mutation = muts[i][round].name
			if _, err := c.do(ctx, op, r, credsConfigured); err != nil {
				return err
			}
		}
		if !any {
			break
		}
	}
	// Then random stacks of mutations until the budget runs out.
	for {
		i := c.gen.rng.IntN(len(c.spec.ops))
		op := c.spec.ops[i]
		r := c.gen.valid(op)
		if len(muts[i]) > 0 {
			var names []string
			for range 1 + c.gen.rng.IntN(3) {
				m := muts[i][c.gen.rng.IntN(len(muts[i]))]
				m.apply(&r)
				names = append(names, m.name)
			}
			r.Mutation = strings.Join(names, "; ")
		}
		if _, err := c.do(ctx, op, r, credsConfigured); err != nil {
			return err
		}
	}
}

// validRequest sends op's valid request, follows its links and, with
// replays, sends it again without and with garbage credentials when op is
// secured.
func (c *campaign) validRequest(ctx context.Context, op *operation, replays bool) (*exchange, error) {
	r := c.gen.valid(op)
	ex, err := c.do(ctx, op, r, credsConfigured)
	if err != nil {
		return nil, err
	}
	if err := c.follow(ctx, op, r, ex); err != nil {
		return nil, err
	}
	if op.Secured && replays {
		for _, cr := range []creds{credsNone, credsGarbage} {
			if _, err := c.do(ctx, op, r, cr); err != nil {
				return nil, err
			}
		}
	}
	return ex, nil
}

// do sends r, checks the response and records what it trips. A nil
// exchange (and nil error) means the request could not be built (a header
// value net/http refuses) and was skipped.
func (c *campaign) do(ctx context.Context, op *operation, r Request, cr creds) (*exchange, error) {
	ex, err := c.send(ctx, r, cr)
	if err != nil || ex == nil {
		return ex, err
	}
	var hits []hit
	if cr == credsConfigured {
		hits = c.chk.check(op, ex)
		if ex.status/100 == 2 {
			if v, err := decodeJSON(ex.body); err == nil {
				c.gen.remember(op, v)
			}
		}
	} else if ex.err == nil && ex.status/100 == 2 {
		hits = []hit{{RuleAuthBypass, cr.String(), fmt.Sprintf("status %d with %s credentials", ex.status, cr)}}
	}
	for _, h := range hits {
		key := h.rule + "\x00" + op.ID + "\x00" + h.key
		if c.found[key] {
			continue
		}
		c.found[key] = true
		small, steps, err := c.shrink(ctx, op, r, cr, h)
		if err != nil && !errors.Is(err, errBudget) {
			return nil, err
		}
		c.opts.Logger.Info("fuzz finding", "rule", h.rule, "operation", op.ID, "message", h.message)
		c.res.Findings = append(c.res.Findings, Finding{
			Rule: h.rule, Severity: severityOf(h.rule), Operation: op.ID, Message: h.message,
			Credentials: cr.String(), Request: small, ShrinkSteps: steps,
			Curl: c.curl(small, cr),
		})
		if err != nil {
			return nil, err
		}
	}
	return ex, nil
}
