package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// newStore opens a SQLite store whose clock runs 1000 times faster than
// the wall clock, so the job queue's backoff of 2^attempts seconds is
// 2^attempts milliseconds here and retries happen without sleeping.
func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	base := time.Now()
	st.Now = func() time.Time { return base.Add(time.Since(base) * 1000) }
	return st
}

func newKey(t *testing.T) *seal.Key {
	t.Helper()
	k, err := seal.Load("", filepath.Join(t.TempDir(), "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// addWebhook stores a webhook as the API does: the target sealed, the URL
// redacted.
func addWebhook(t *testing.T, st *store.Store, k *seal.Key, name, kind, rawURL, secret string, events ...string) store.Webhook {
	t.Helper()
	sealed, err := SealTarget(k, name, Target{URL: rawURL, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	w := store.Webhook{Name: name, URL: RedactURL(rawURL), Kind: kind, Secret: sealed, Events: events}
	if w.ID, err = st.PutWebhook(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	return w
}

// startDispatcher runs a Dispatcher over st until the test ends, logging
// to log when it is not nil.
func startDispatcher(t *testing.T, st *store.Store, k *seal.Key, log io.Writer) {
	t.Helper()
	if log == nil {
		log = t.Output()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	d := &Dispatcher{Store: st, Key: k, Logger: slog.New(slog.NewTextHandler(log, nil)), Instance: "test", PollInterval: 5 * time.Millisecond}
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Dispatcher.Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Dispatcher.Run did not return within 5 s of cancel")
		}
	})
}

// waitJob waits until job id is in state and returns it.
func waitJob(t *testing.T, st *store.Store, id int64, state string) *store.Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := st.Job(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == state {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d still %s after 10 s (want %s): attempts %d, error %q", id, j.State, state, j.Attempts, j.Error)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// receiver is a webhook endpoint that answers the statuses in order, then
// the last one forever, and records every request.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	reqs     []recorded
}

type recorded struct {
	header http.Header
	body   []byte
	path   string
	status int
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	rc := &receiver{statuses: statuses}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		status := rc.statuses[min(len(rc.reqs), len(rc.statuses)-1)]
		rc.reqs = append(rc.reqs, recorded{header: r.Header.Clone(), body: body, path: r.URL.Path, status: status})
		rc.mu.Unlock()
		w.WriteHeader(status)
		if status >= 300 {
			io.WriteString(w, "receiver says no\n")
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recorded(nil), rc.reqs...)
}

func revokedEvent() Event {
	return Revoked(Revocation{
		Digest:         "sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
		Repository:     "registry.local/shop/api",
		Tags:           []string{"1.4", "latest"},
		Reason:         "CVE-2024-1234 (HIGH) in openssl 3.0.11",
		RollbackTarget: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		RollbackTags:   []string{"1.3"},
	})
}

const testSecret = "whsec-9f8e7d6c5b4a39281706f5e4d3c2b1a0"

// A receiver that fails twice and then succeeds gets the event exactly
// once, signed, with the same delivery id on every attempt; the job is
// done after 3 attempts.
func TestDispatcherRetriesUntilDelivered(t *testing.T) {
	st, k := newStore(t), newKey(t)
	rc := newReceiver(t, 500, 502, 200)
	addWebhook(t, st, k, "ci", store.WebhookGeneric, rc.URL+"/hooks/bulwark", testSecret)
	ev := revokedEvent()
	ids, err := Publish(t.Context(), st, ev)
	if err != nil || len(ids) != 1 {
		t.Fatalf("Publish = %v, %v", ids, err)
	}
	startDispatcher(t, st, k, nil)
	j := waitJob(t, st, ids[0], store.JobDone)
	if j.Attempts != 3 || j.Error != "" {
		t.Errorf("job = %+v, want done after 3 attempts with no error", j)
	}
	time.Sleep(100 * time.Millisecond) // nothing more may arrive
	reqs := rc.requests()
	accepted := 0
	for i, r := range reqs {
		if r.status == 200 {
			accepted++
		}
		if got := r.header.Get(HeaderDelivery); got != "1" {
			t.Errorf("request %d: %s = %q, want the job id 1", i, HeaderDelivery, got)
		}
		if got := r.header.Get(HeaderEvent); got != EventRevoked {
			t.Errorf("request %d: %s = %q", i, HeaderEvent, got)
		}
		if err := Verify([]byte(testSecret), r.header.Get(HeaderSignature), r.header.Get(HeaderTimestamp), r.body, 0); err != nil {
			t.Errorf("request %d: signature: %v", i, err)
		}
		if r.path != "/hooks/bulwark" {
			t.Errorf("request %d went to %s", i, r.path)
		}
	}
	if len(reqs) != 3 || accepted != 1 {
		t.Fatalf("receiver got %d requests, %d accepted; want 3 and 1", len(reqs), accepted)
	}
	var got Event
	if err := json.Unmarshal(reqs[2].body, &got); err != nil {
		t.Fatal(err)
	}
	var rv Revocation
	if err := json.Unmarshal(got.Data, &rv); err != nil {
		t.Fatal(err)
	}
	if got.ID != ev.ID || got.Type != EventRevoked || got.Subject != "registry.local/shop/api@"+rv.Digest ||
		rv.RollbackTarget != "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" ||
		rv.Reason != "CVE-2024-1234 (HIGH) in openssl 3.0.11" || len(rv.Tags) != 2 {
		t.Errorf("delivered event = %+v, data %+v", got, rv)
	}
}

// A receiver that always fails exhausts the attempts; the job is failed
// with the last status and the receiver's answer.
func TestDispatcherGivesUpAfterMaxAttempts(t *testing.T) {
	st, k := newStore(t), newKey(t)
	st.MaxAttempts = 3
	rc := newReceiver(t, 503)
	addWebhook(t, st, k, "down", store.WebhookGeneric, rc.URL, testSecret)
	ids, err := Publish(t.Context(), st, revokedEvent())
	if err != nil {
		t.Fatal(err)
	}
	startDispatcher(t, st, k, nil)
	j := waitJob(t, st, ids[0], store.JobFailed)
	if j.Attempts != 3 || !strings.Contains(j.Error, "503 Service Unavailable: receiver says no") {
		t.Errorf("job = %+v", j)
	}
	if n := len(rc.requests()); n != 3 {
		t.Errorf("receiver got %d requests, want 3", n)
	}
}

// A 4xx other than 408/425/429 fails the delivery at the first attempt;
// 429 is retried.
func TestDispatcherClientErrorIsPermanent(t *testing.T) {
	st, k := newStore(t), newKey(t)
	gone := newReceiver(t, 404)
	busy := newReceiver(t, 429, 204)
	addWebhook(t, st, k, "gone", store.WebhookGeneric, gone.URL, testSecret)
	addWebhook(t, st, k, "busy", store.WebhookGeneric, busy.URL, testSecret)
	ids, err := Publish(t.Context(), st, revokedEvent())
	if err != nil || len(ids) != 2 {
		t.Fatalf("Publish = %v, %v", ids, err)
	}
	startDispatcher(t, st, k, nil)
	// ListWebhooks orders by name: busy, then gone.
	if j := waitJob(t, st, ids[1], store.JobFailed); j.Attempts != 1 || !strings.Contains(j.Error, "404 Not Found") {
		t.Errorf("404 delivery = %+v", j)
	}
	if j := waitJob(t, st, ids[0], store.JobDone); j.Attempts != 2 {
		t.Errorf("429 delivery = %+v, want done at attempt 2", j)
	}
	if n := len(gone.requests()); n != 1 {
		t.Errorf("404 receiver got %d requests, want 1", n)
	}
	for _, s := range []int{408, 425, 429, 500, 503} {
		if !Retryable(s) {
			t.Errorf("Retryable(%d) = false", s)
		}
	}
	for _, s := range []int{301, 400, 401, 403, 404, 410, 422} {
		if Retryable(s) {
			t.Errorf("Retryable(%d) = true", s)
		}
	}
}

// The Slack body is {"text", "blocks"} with the human summary; it goes to
// the sealed URL, and no error kept on a job names the URL's token.
func TestDispatcherSlack(t *testing.T) {
	st, k := newStore(t), newKey(t)
	st.MaxAttempts = 2
	ok := newReceiver(t, 200)
	refused := newReceiver(t, 403)
	addWebhook(t, st, k, "a-slack", store.WebhookSlack, ok.URL+"/services/T000/B000/token-ok-XYZ", "")
	addWebhook(t, st, k, "b-slack-revoked", store.WebhookSlack, refused.URL+"/services/T000/B000/token-403-XYZ", "")
	// A port nothing listens on: a network error, retried then failed.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	addWebhook(t, st, k, "c-slack-down", store.WebhookSlack, closed.URL+"/services/T000/B000/token-down-XYZ", "")
	var logs bytes.Buffer
	var logMu sync.Mutex
	ids, err := Publish(t.Context(), st, revokedEvent())
	if err != nil || len(ids) != 3 {
		t.Fatalf("Publish = %v, %v", ids, err)
	}
	startDispatcher(t, st, k, lockedWriter{&logMu, &logs})
	waitJob(t, st, ids[0], store.JobDone)
	failed403 := waitJob(t, st, ids[1], store.JobFailed)
	failedNet := waitJob(t, st, ids[2], store.JobFailed)

	reqs := ok.requests()
	if len(reqs) != 1 || reqs[0].path != "/services/T000/B000/token-ok-XYZ" {
		t.Fatalf("slack receiver got %+v", reqs)
	}
	if reqs[0].header.Get(HeaderSignature) != "" {
		t.Error("a Slack webhook without a secret got a signature header")
	}
	var msg map[string]any
	if err := json.Unmarshal(reqs[0].body, &msg); err != nil {
		t.Fatal(err)
	}
	text, _ := msg["text"].(string)
	want := ":rotating_light: revoked `registry.local/shop/api@sha256:abcdef012345…` [1.4, latest] (CVE-2024-1234 (HIGH) in openssl 3.0.11); " +
		"roll back to `sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef` [1.3]"
	if text != want {
		t.Errorf("text = %q\nwant   %q", text, want)
	}
	blocks, _ := msg["blocks"].([]any)
	if len(blocks) != 2 {
		t.Fatalf("blocks = %v", msg["blocks"])
	}
	section, _ := blocks[0].(map[string]any)
	sectionText, _ := section["text"].(map[string]any)
	if section["type"] != "section" || sectionText["type"] != "mrkdwn" || sectionText["text"] != want {
		t.Errorf("first block = %v", section)
	}
	if context, _ := blocks[1].(map[string]any); context["type"] != "context" {
		t.Errorf("second block = %v", context)
	}

	if failed403.Attempts != 1 || !strings.Contains(failed403.Error, "/services/…: 403 Forbidden") {
		t.Errorf("403 delivery = %+v", failed403)
	}
	if failedNet.Attempts != 2 || !strings.Contains(failedNet.Error, "/services/…: ") {
		t.Errorf("network-error delivery = %+v", failedNet)
	}
	hooks, _ := st.ListWebhooks(t.Context())
	logMu.Lock()
	defer logMu.Unlock()
	for _, s := range []string{failed403.Error, failedNet.Error, logs.String(), hooks[0].URL, hooks[1].URL, hooks[2].URL} {
		if strings.Contains(s, "XYZ") {
			t.Errorf("the URL's token leaked: %s", s)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Slack text escapes the characters mrkdwn gives meaning to, and an event
// without a rollback target says so.
func TestSlackSummary(t *testing.T) {
	ev := Revoked(Revocation{Digest: "sha256:1234", Repository: "r.example/a", Reason: "GHSA-x <script> & more"})
	got := Summary(ev)
	want := ":rotating_light: revoked `r.example/a@sha256:1234` (GHSA-x &lt;script&gt; &amp; more); no rollback target: no other digest of the repository passes policy"
	if got != want {
		t.Errorf("Summary = %q\nwant      %q", got, want)
	}
	for _, tc := range []struct {
		ev   Event
		want string
	}{
		{ScanFailed(ScanFailure{Image: "r.example/a:1", Attempts: 10, Error: "unauthorized"}), ":warning: scan of `r.example/a:1` failed after 10 attempts: unauthorized"},
		{Granted(Grant{Digest: "sha256:abcd", Repository: "r.example/a", Tags: []string{"2"}}), ":white_check_mark: certified `r.example/a@sha256:abcd` [2]"},
		{ImageNew(NewImage{Digest: "sha256:abcd", Repository: "r.example/a"}), ":new: new image `r.example/a@sha256:abcd`"},
		{Test("ops"), ":wave: Test notification from Bulwark: this webhook is reachable. (webhook ops)"},
		{Event{Type: "other", Subject: "x"}, "Bulwark event other: x"},
	} {
		if got := Summary(tc.ev); got != tc.want {
			t.Errorf("Summary(%s) = %q, want %q", tc.ev.Type, got, tc.want)
		}
	}
	long := Revoked(Revocation{Digest: "sha256:1", Repository: "r", Reason: strings.Repeat("é", 4000)})
	if txt := Slack(long).Blocks[0].Text.Text; len(txt) > slackTextMax || !strings.HasSuffix(txt, "…") {
		t.Errorf("a long section is %d bytes", len(txt))
	}
}

// Publish queues one delivery per subscribed webhook; PublishTo ignores
// subscriptions.
func TestPublishSubscriptions(t *testing.T) {
	st, k := newStore(t), newKey(t)
	only := addWebhook(t, st, k, "revocations", store.WebhookGeneric, "https://a.example/x", testSecret, EventRevoked)
	addWebhook(t, st, k, "everything", store.WebhookSlack, "https://b.example/y", "")
	ctx := t.Context()
	if ids, err := Publish(ctx, st, ScanFailed(ScanFailure{Image: "r/a:1"})); err != nil || len(ids) != 1 {
		t.Errorf("Publish(scan.failed) = %v, %v; want 1 delivery", ids, err)
	}
	if ids, err := Publish(ctx, st, revokedEvent()); err != nil || len(ids) != 2 {
		t.Errorf("Publish(revoked) = %v, %v; want 2 deliveries", ids, err)
	}
	id, err := PublishTo(ctx, st, only, Test("revocations"))
	if err != nil {
		t.Fatal(err)
	}
	j, _ := st.Job(ctx, id)
	var dl Delivery
	if err := json.Unmarshal(j.Payload, &dl); err != nil || dl.Webhook != only.ID || dl.Name != "revocations" || dl.Event.Type != EventTest {
		t.Errorf("test delivery = %+v, %v", dl, err)
	}
	if bytes.Contains(j.Payload, []byte(testSecret)) {
		t.Error("the job payload holds the secret")
	}
}

// A delivery whose webhook was deleted is dropped at once.
func TestDispatcherDropsDeletedWebhook(t *testing.T) {
	st, k := newStore(t), newKey(t)
	rc := newReceiver(t, 200)
	addWebhook(t, st, k, "old", store.WebhookGeneric, rc.URL, testSecret)
	ids, err := Publish(t.Context(), st, revokedEvent())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteWebhook(t.Context(), "old"); err != nil {
		t.Fatal(err)
	}
	startDispatcher(t, st, k, nil)
	if j := waitJob(t, st, ids[0], store.JobFailed); j.Attempts != 1 || j.Error != `webhook "old" was deleted` {
		t.Errorf("job = %+v", j)
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("receiver got %d requests", n)
	}
}

// A target sealed for one webhook does not open as another's, nor with
// another key; a missing key is ErrNoKey.
func TestTargetSealing(t *testing.T) {
	k := newKey(t)
	sealed, err := SealTarget(k, "a", Target{URL: "https://h.example/p", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(testSecret)) || bytes.Contains(sealed, []byte("h.example")) {
		t.Error("sealed target holds plaintext")
	}
	got, err := OpenTarget(k, store.Webhook{Name: "a", Secret: sealed})
	if err != nil || got.URL != "https://h.example/p" || got.Secret != testSecret {
		t.Errorf("OpenTarget = %+v, %v", got, err)
	}
	if _, err := OpenTarget(k, store.Webhook{Name: "b", Secret: sealed}); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("opened as another webhook: %v", err)
	}
	if _, err := OpenTarget(newKey(t), store.Webhook{Name: "a", Secret: sealed}); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("opened with another key: %v", err)
	}
	if _, err := SealTarget(nil, "a", Target{URL: "https://x"}); !errors.Is(err, ErrNoKey) {
		t.Errorf("SealTarget(nil key) = %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://hooks.slack.com/services/T0/B0/XXXX": "https://hooks.slack.com/services/…",
		"https://ci.example/bulwark":                  "https://ci.example/bulwark",
		"https://ci.example/":                         "https://ci.example",
		"https://user:pw@ci.example/hook?token=abc":   "https://ci.example/hook?…",
		"http://127.0.0.1:9000/a/b":                   "http://127.0.0.1:9000/a/…",
		"not a url":                                   "…",
	} {
		if got := RedactURL(raw); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", raw, got, want)
		}
	}
	for _, bad := range []string{"ftp://x/y", "https:///path", "https://x/y#frag", "mailto:a@b"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		}
	}
}
