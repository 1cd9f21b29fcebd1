package fuzzcampaign

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/bulwark-sec/bulwark/internal/fuzz"
	"github.com/bulwark-sec/bulwark/internal/notify"
	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Payload is the payload of a campaign's job.
type Payload struct {
	Campaign int64 `json:"campaign"`
}

// CredentialContext is the sealing context of an application's API
// credential: a sealed value moved to another application does not open.
func CredentialContext(application string) string { return "fuzz-api:" + application }

// ErrHostNotRegistered: a campaign request to a host the registration does
// not allow (a document URL elsewhere, a redirect).
var ErrHostNotRegistered = errors.New("host not registered for the application's API")

// maxListed bounds the findings a fuzz.findings event lists.
const maxListed = 50

// Runner claims campaign jobs and runs them one at a time.
type Runner struct {
	Store *store.Store
	// Key opens the registrations' sealed credentials; nil: campaigns of
	// registrations with a credential fail.
	Key *seal.Key
	// Transport makes the campaign's requests: the server's egress policy.
	// nil means http.DefaultTransport (tests).
	Transport http.RoundTripper
	Instance  string
	Poll      time.Duration
	Logger    *slog.Logger
}

// Run claims and runs campaigns until ctx is done.
func (r *Runner) Run(ctx context.Context) error {
	poll := r.Poll
	if poll <= 0 {
		poll = time.Second
	}
	return store.RunJobs(ctx, r.Store, r.Instance+"/fuzz", []string{JobKind}, poll, r.runJob)
}

func (r *Runner) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// runJob runs the campaign of j and records its outcome. A campaign that
// fails (unreachable document, refused address) is recorded as failed and
// its job completed: it is not retried, as it would send the same hostile
// requests again.
func (r *Runner) runJob(ctx context.Context, j *store.Job) error {
	var p Payload
	if err := json.Unmarshal(j.Payload, &p); err != nil || p.Campaign == 0 {
		r.log().Warn("fuzz job without a campaign", "job", j.ID)
		return r.Store.CompleteJob(ctx, j)
	}
	log := r.log().With("campaign", p.Campaign, "job", j.ID)
	start := time.Now()
	res, c, runErr := r.campaign(ctx, p.Campaign)
	if ctx.Err() != nil {
		return nil // shutdown: the stale job is claimed again
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := r.Store.Tx(rctx, func(tx *sql.Tx) error {
		st := r.Store.InTx(tx)
		if runErr != nil {
			return st.FinishFuzzCampaign(rctx, p.Campaign, store.CampaignFailed, 0, nil, runErr.Error())
		}
		report, merr := json.Marshal(res)
		if merr != nil {
			return merr
		}
		if ferr := st.FinishFuzzCampaign(rctx, p.Campaign, store.CampaignDone, len(res.Findings), report, ""); ferr != nil {
			return ferr
		}
		if len(res.Findings) == 0 {
			return nil
		}
		_, perr := notify.Publish(rctx, st, findingsEvent(c, res))
		return perr
	})
	if err != nil {
		return fmt.Errorf("recording fuzz campaign %d: %w", p.Campaign, err)
	}
	if res != nil {
		log.Info("fuzz campaign done", "application", c.app.Name, "requests", res.Requests, "findings", len(res.Findings), "stop", res.Stop, "duration", time.Since(start))
	} else {
		log.Warn("fuzz campaign failed", "err", runErr, "duration", time.Since(start))
	}
	if err := r.Store.CompleteJob(rctx, j); err != nil && !errors.Is(err, store.ErrClaimLost) {
		return fmt.Errorf("completing fuzz job %d: %w", j.ID, err)
	}
	return nil
}

// target is what a campaign runs against.
type target struct {
	id  int64
	app store.Application
	reg store.APIRegistration
}

// campaign runs campaign id.
func (r *Runner) campaign(ctx context.Context, id int64) (*fuzz.Result, target, error) {
	t := target{id: id}
	c, err := r.Store.FuzzCampaign(ctx, "", id)
	if err != nil {
		return nil, t, err
	}
	var opts Options
	if err := json.Unmarshal(c.Options, &opts); err != nil {
		return nil, t, fmt.Errorf("reading the options of campaign %d: %w", id, err)
	}
	if t.app, err = r.Store.Application(ctx, c.Application); err != nil {
		return nil, t, fmt.Errorf("reading application %q: %w", c.Application, err)
	}
	if t.reg, err = r.Store.APIRegistration(ctx, c.Application); err != nil {
		return nil, t, fmt.Errorf("reading the API of application %q: %w", c.Application, err)
	}
	if err := r.Store.StartFuzzCampaign(ctx, id); err != nil {
		return nil, t, err
	}
	// The whole campaign, the document's fetch included, within its
	// duration and a minute.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(opts.DurationSeconds)*time.Second+time.Minute)
	defer cancel()
	var auth []fuzz.Pair
	if t.reg.AuthHeader != "" {
		if r.Key == nil {
			return nil, t, fmt.Errorf("opening the API credential of %q: the server has no secret key", c.Application)
		}
		v, err := r.Key.Open(t.reg.AuthSealed, CredentialContext(c.Application))
		if err != nil {
			return nil, t, fmt.Errorf("opening the API credential of %q: %w", c.Application, err)
		}
		auth = []fuzz.Pair{{Name: t.reg.AuthHeader, Value: string(v)}}
	}
	client := r.client(t.reg.AllowedHosts)
	spec, err := fuzz.Load(ctx, t.reg.OpenAPI, fuzz.DocumentClient(client, t.reg.Target, auth))
	if err != nil {
		return nil, t, err
	}
	fo := fuzz.Options{
		Target: t.reg.Target, Auth: auth, Seed: opts.Seed, MaxRequests: opts.MaxRequests,
		Duration: time.Duration(opts.DurationSeconds) * time.Second, Rate: opts.Rate,
		AllowHosts: t.reg.AllowedHosts, Client: client, Logger: r.log().With("campaign", id),
		Params: opts.Params, Secured: opts.Secured,
	}
	if opts.Operations != "" {
		if fo.Operations, err = regexp.Compile(opts.Operations); err != nil {
			return nil, t, fmt.Errorf("compiling operations %q: %w", opts.Operations, err)
		}
	}
	res, err := fuzz.Run(ctx, spec, fo)
	if err != nil {
		return nil, t, err
	}
	if res.Requests > 0 && res.TransportErrors == res.Requests {
		return nil, t, fmt.Errorf("fuzzing %s: none of %d requests was answered", t.reg.Target, res.Requests)
	}
	return res, t, nil
}

// client sends only to the allowed hosts, through the egress transport,
// and follows no redirect.
func (r *Runner) client(allowed []string) *http.Client {
	next := r.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	return &http.Client{
		Transport: hostGuard{allowed: allowed, next: next},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// hostGuard refuses requests to hosts not allowed.
type hostGuard struct {
	allowed []string
	next    http.RoundTripper
}

func (g hostGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if !hostAllowed(g.allowed, req.URL.Host) {
		return nil, fmt.Errorf("sending to %s: %w", req.URL.Host, ErrHostNotRegistered)
	}
	return g.next.RoundTrip(req)
}

// findingsEvent is the fuzz.findings event of a finished campaign.
func findingsEvent(t target, res *fuzz.Result) notify.Event {
	f := notify.FuzzFindings{
		Application: t.app.Name, Team: t.app.Team, Contact: t.app.Contact, Campaign: t.id,
		Report:   "/api/v1/applications/" + t.app.Name + "/fuzz-campaigns/" + strconv.FormatInt(t.id, 10),
		Target:   t.reg.Target,
		Requests: res.Requests,
	}
	for i, fd := range res.Findings {
		if i == maxListed {
			f.More = len(res.Findings) - maxListed
			break
		}
		f.Findings = append(f.Findings, notify.FuzzFindingRef{Rule: fd.Rule, Severity: fd.Severity, Operation: fd.Operation})
	}
	return notify.FuzzFound(f)
}
