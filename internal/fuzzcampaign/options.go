package fuzzcampaign

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// JobKind is the kind of the store jobs that carry campaigns.
const JobKind = "fuzz"

// Limits bound what one campaign may cost; zero fields take the defaults.
type Limits struct {
	MaxRequests     int           // at most; DefaultMaxRequests when unset
	MaxDuration     time.Duration // at most
	MaxRate         float64       // requests per second, at most
	DefaultRequests int
	DefaultDuration time.Duration
	DefaultRate     float64
}

// Defaults of Limits.
const (
	DefaultMaxRequests     = 5000
	DefaultMaxDuration     = 10 * time.Minute
	DefaultMaxRate         = 200
	DefaultCampaignRequest = 500
	DefaultCampaignTime    = 2 * time.Minute
	DefaultCampaignRate    = 50
)

func (l Limits) withDefaults() Limits {
	if l.MaxRequests <= 0 {
		l.MaxRequests = DefaultMaxRequests
	}
	if l.MaxDuration <= 0 {
		l.MaxDuration = DefaultMaxDuration
	}
	if l.MaxRate <= 0 {
		l.MaxRate = DefaultMaxRate
	}
	if l.DefaultRequests <= 0 {
		l.DefaultRequests = min(DefaultCampaignRequest, l.MaxRequests)
	}
	if l.DefaultDuration <= 0 {
		l.DefaultDuration = min(DefaultCampaignTime, l.MaxDuration)
	}
	if l.DefaultRate <= 0 {
		l.DefaultRate = min(DefaultCampaignRate, l.MaxRate)
	}
	return l
}

// Options are what an operator asks of a campaign (the body of POST
// /api/v1/applications/{name}/fuzz-campaigns). Zero fields take the
// Limits' defaults.
type Options struct {
	MaxRequests     int     `json:"maxRequests,omitempty"`
	DurationSeconds int     `json:"durationSeconds,omitempty"`
	Rate            float64 `json:"rate,omitempty"`
	Seed            uint64  `json:"seed,omitempty"`
	// Operations selects operations by regular expression (see
	// fuzz.Options.Operations); "" is all.
	Operations string `json:"operations,omitempty"`
	// Params pin parameters by name (see fuzz.Options.Params).
	Params map[string]string `json:"params,omitempty"`
	// Secured replays every operation without and with garbage
	// credentials (see fuzz.Options.Secured).
	Secured bool `json:"secured,omitempty"`
}

// maxParams bounds Options.Params.
const maxParams = 20

// ErrOptions is wrapped by every refusal of Options.
var ErrOptions = errors.New("bad campaign options")

// Fill checks o against l and fills its zero fields with l's defaults.
func (o *Options) Fill(l Limits) error {
	l = l.withDefaults()
	switch {
	case o.MaxRequests < 0 || o.MaxRequests > l.MaxRequests:
		return fmt.Errorf("%w: maxRequests %d: want 1 to %d", ErrOptions, o.MaxRequests, l.MaxRequests)
	case o.DurationSeconds < 0 || time.Duration(o.DurationSeconds)*time.Second > l.MaxDuration:
		return fmt.Errorf("%w: durationSeconds %d: want 1 to %.0f", ErrOptions, o.DurationSeconds, l.MaxDuration.Seconds())
	case o.Rate < 0 || o.Rate > l.MaxRate || o.Rate != o.Rate:
		return fmt.Errorf("%w: rate %g: want up to %g requests per second", ErrOptions, o.Rate, l.MaxRate)
	case len(o.Operations) > 1000:
		return fmt.Errorf("%w: operations: over 1000 characters", ErrOptions)
	}
	if len(o.Params) > maxParams {
		return fmt.Errorf("%w: params: more than %d", ErrOptions, maxParams)
	}
	for name, v := range o.Params {
		if name == "" || len(name) > 200 || len(v) > 2000 {
			return fmt.Errorf("%w: params: %q: want a name of 1 to 200 bytes and a value of at most 2000", ErrOptions, name)
		}
	}
	if _, err := regexp.Compile(o.Operations); err != nil {
		return fmt.Errorf("%w: operations %q: %v", ErrOptions, o.Operations, err)
	}
	if o.MaxRequests == 0 {
		o.MaxRequests = l.DefaultRequests
	}
	if o.DurationSeconds == 0 {
		o.DurationSeconds = int(l.DefaultDuration / time.Second)
	}
	if o.Rate == 0 {
		o.Rate = l.DefaultRate
	}
	return nil
}

// ErrRegistration is wrapped by every refusal of a registration.
var ErrRegistration = errors.New("bad API registration")

// CheckRegistration checks the URLs of a registration and returns the
// allowed hosts: allowed as given (each "host" or "host:port", no
// wildcard), or, when empty, the hosts of the two URLs. Both URLs must be
// http(s), without user information, on an allowed host.
func CheckRegistration(openapi, target string, allowed []string) ([]string, error) {
	var hosts []string
	for _, h := range allowed {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" || strings.ContainsAny(h, "*/?#@ ") || len(h) > 300 {
			return nil, fmt.Errorf("%w: allowed host %q: want host or host:port, no wildcard", ErrRegistration, h)
		}
		if _, _, err := net.SplitHostPort(h); err != nil && strings.Contains(h, ":") && net.ParseIP(h) == nil {
			return nil, fmt.Errorf("%w: allowed host %q: %v", ErrRegistration, h, err)
		}
		hosts = append(hosts, h)
	}
	var urlHosts []string
	for _, f := range []struct{ name, v string }{{"openapi", openapi}, {"target", target}} {
		u, err := url.Parse(f.v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
			return nil, fmt.Errorf("%w: %s %q: want an http(s) URL", ErrRegistration, f.name, f.v)
		}
		if u.User != nil {
			return nil, fmt.Errorf("%w: %s: user information in the URL (give a credential header instead)", ErrRegistration, f.name)
		}
		if len(f.v) > 2000 {
			return nil, fmt.Errorf("%w: %s: over 2000 characters", ErrRegistration, f.name)
		}
		urlHosts = append(urlHosts, strings.ToLower(u.Host))
	}
	if len(hosts) == 0 {
		return slices.Compact(slices.Sorted(slices.Values(urlHosts))), nil
	}
	for i, h := range urlHosts {
		if !hostAllowed(hosts, h) {
			return nil, fmt.Errorf("%w: the %s URL's host %s is not an allowed host (%s)", ErrRegistration, []string{"openapi", "target"}[i], h, strings.Join(hosts, ", "))
		}
	}
	return hosts, nil
}

// hostAllowed reports whether hostport (a URL's Host) is allowed: named
// with its port, or by its host name alone.
func hostAllowed(allowed []string, hostport string) bool {
	hostport = strings.ToLower(hostport)
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	return slices.ContainsFunc(allowed, func(a string) bool { return a == hostport || strings.Trim(a, "[]") == host })
}
