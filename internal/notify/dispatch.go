package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/sync/errgroup"

	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Defaults of Dispatcher's zero fields.
const (
	DefaultPollInterval = time.Second
	DefaultConcurrency  = 2
	DefaultTimeout      = 10 * time.Second
)

// Store is what a Dispatcher needs from the store.
type Store interface {
	ClaimJob(ctx context.Context, worker string, kinds ...string) (*store.Job, error)
	CompleteJob(ctx context.Context, j *store.Job) error
	FailJob(ctx context.Context, j *store.Job, cause error) error
	AbandonJob(ctx context.Context, j *store.Job, cause error) error
	WebhookByID(ctx context.Context, id int64) (store.Webhook, error)
}

// Dispatcher delivers the notify jobs Publish queued. Its exported fields
// configure it; Store and Key are required.
type Dispatcher struct {
	Store Store
	// Key opens the webhooks' sealed targets.
	Key *seal.Key
	// Client posts the deliveries; nil is a client with DefaultTimeout
	// that does not follow redirects.
	Client *http.Client
	// Logger is nil for slog.Default().
	Logger *slog.Logger
	// Instance names this replica in job claims; "notify" when empty.
	// Each delivery loop claims as Instance + "/notify/" + its number.
	Instance string
	// PollInterval is how long an idle loop sleeps before claiming again.
	PollInterval time.Duration
	// Concurrency is how many deliveries run at once.
	Concurrency int
	// Now is the clock of the signature timestamps; nil means time.Now.
	Now func() time.Time
}

// Run delivers until ctx is done (nil). A failed delivery fails its job,
// not the dispatcher; a store that cannot be read is fatal.
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.Store == nil {
		return errors.New("notify dispatcher: no store")
	}
	n := d.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	instance := d.Instance
	if instance == "" {
		instance = "notify"
	}
	g, ctx := errgroup.WithContext(ctx)
	for i := range n {
		worker := instance + "/notify/" + strconv.Itoa(i)
		g.Go(func() error { return d.loop(ctx, worker) })
	}
	return g.Wait()
}

func (d *Dispatcher) loop(ctx context.Context, worker string) error {
	poll := d.PollInterval
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	if err := store.RunJobs(ctx, d.Store, worker, []string{JobKind}, poll, d.run); err != nil {
		return fmt.Errorf("notify dispatcher %s: %w", worker, err)
	}
	return nil
}

// permanent marks a delivery failure that a retry cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// run delivers j and records the outcome. It returns an error only when
// the outcome cannot be recorded.
func (d *Dispatcher) run(ctx context.Context, j *store.Job) error {
	log := d.logger().With("delivery", j.ID, "attempt", j.Attempts)
	hook, ev, status, err := d.deliver(ctx, j)
	log = log.With("webhook", hook, "event", ev.Type, "eventID", ev.ID)
	// Recorded even when shutdown interrupted the delivery, so the job is
	// queued again now rather than after the stale lease.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var rerr error
	var p permanent
	switch {
	case err == nil:
		log.Info("notification delivered", "status", status)
		rerr = d.Store.CompleteJob(rctx, j)
	case errors.As(err, &p):
		log.Warn("notification failed for good", "err", err)
		rerr = d.Store.AbandonJob(rctx, j, p.err)
	default:
		log.Warn("notification failed; will retry", "err", err)
		rerr = d.Store.FailJob(rctx, j, err)
	}
	if errors.Is(rerr, store.ErrClaimLost) {
		log.Warn("delivery was claimed by another worker meanwhile", "err", rerr)
		return nil
	}
	if rerr != nil {
		return fmt.Errorf("recording delivery %d: %w", j.ID, rerr)
	}
	return nil
}

// deliver posts j's event and returns the webhook's name, the event and
// the response status. Its errors name the URL only redacted: they are
// kept on the job and shown by the API.
func (d *Dispatcher) deliver(ctx context.Context, j *store.Job) (string, Event, int, error) {
	var dl Delivery
	if err := json.Unmarshal(j.Payload, &dl); err != nil {
		return "", Event{}, 0, permanent{fmt.Errorf("decoding delivery payload: %w", err)}
	}
	hook, err := d.Store.WebhookByID(ctx, dl.Webhook)
	if errors.Is(err, store.ErrNotFound) || (err == nil && hook.Name != dl.Name) {
		return dl.Name, dl.Event, 0, permanent{fmt.Errorf("webhook %q was deleted", dl.Name)}
	}
	if err != nil {
		return dl.Name, dl.Event, 0, err
	}
	target, err := OpenTarget(d.Key, hook)
	if err != nil {
		return hook.Name, dl.Event, 0, err // a replica without the right key; another may have it
	}
	body, err := Body(hook.Kind, dl.Event)
	if err != nil {
		return hook.Name, dl.Event, 0, permanent{err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.URL, bytes.NewReader(body))
	if err != nil {
		return hook.Name, dl.Event, 0, permanent{fmt.Errorf("POST %s: %v", RedactURL(target.URL), redactErr(err))}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bulwark-webhook/1")
	req.Header.Set(HeaderEvent, dl.Event.Type)
	req.Header.Set(HeaderDelivery, strconv.FormatInt(j.ID, 10))
	if target.Secret != "" {
		ts := strconv.FormatInt(d.now().Unix(), 10)
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderSignature, Sign([]byte(target.Secret), ts, body))
	}
	resp, err := d.client().Do(req)
	if err != nil {
		return hook.Name, dl.Event, 0, fmt.Errorf("POST %s: %v", RedactURL(target.URL), redactErr(err))
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return hook.Name, dl.Event, resp.StatusCode, nil
	}
	err = fmt.Errorf("POST %s: %s%s", RedactURL(target.URL), resp.Status, printable(excerpt))
	if !Retryable(resp.StatusCode) {
		err = permanent{err}
	}
	return hook.Name, dl.Event, resp.StatusCode, err
}

// Retryable reports whether a delivery answered with status is tried
// again: 5xx, 408 Request Timeout, 425 Too Early and 429 Too Many
// Requests are; any other 3xx or 4xx fails the delivery at once (a wrong
// URL, a revoked Slack webhook or a receiver rejecting the signature will
// not heal by itself).
func Retryable(status int) bool {
	switch {
	case status >= 500:
		return true
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status == http.StatusTooManyRequests:
		return true
	}
	return false
}

// Body is the request body of ev for a webhook of kind.
func Body(kind string, ev Event) ([]byte, error) {
	switch kind {
	case store.WebhookGeneric:
		return json.Marshal(ev)
	case store.WebhookSlack:
		return json.Marshal(Slack(ev))
	}
	return nil, fmt.Errorf("unknown webhook kind %q", kind)
}

// redactErr is err without the URL an *url.Error carries: the client's
// errors quote the full URL, token included.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// printable is ": " and the receiver's answer on one line, at most 200
// characters, or "" when it is empty.
func printable(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, strings.ToValidUTF8(string(b), "?"))
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return ""
	}
	return ": " + truncate(s, 200)
}

func (d *Dispatcher) client() *http.Client {
	if d.Client != nil {
		return d.Client
	}
	return defaultClient
}

var defaultClient = &http.Client{
	Timeout: DefaultTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a 3xx is a failure, not followed
	},
}

func (d *Dispatcher) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}

func (d *Dispatcher) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}
