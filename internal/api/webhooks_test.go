package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/notify"
	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// webhookEnv is an API over a real SQLite store with a secret key, role
// tokens and a log that tests may search.
type webhookEnv struct {
	t      *testing.T
	h      *Handler
	st     *store.Store
	key    *seal.Key
	dbPath string
	tokens map[string]string // role -> token
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newWebhookEnv(t *testing.T) *webhookEnv {
	t.Helper()
	dir := t.TempDir()
	e := &webhookEnv{t: t, dbPath: filepath.Join(dir, "bulwark.db"), tokens: map[string]string{}, logs: &syncBuffer{}}
	st, err := store.Open(t.Context(), e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// The queue's clock runs 1000 times faster: a backoff of 2^n s is
	// 2^n ms here.
	base := time.Now()
	st.Now = func() time.Time { return base.Add(time.Since(base) * 1000) }
	e.st = st
	if e.key, err = seal.Load("", filepath.Join(dir, "secret.key")); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.h = New(st, NewAuditor(st, ""), &Metrics{Images: CountImages(st.DB())}, log)
	e.h.UseSealKey(e.key)
	for _, role := range []string{store.RoleViewer, store.RoleOperator, store.RoleAdmin} {
		_, tok, err := st.CreateToken(t.Context(), role, role)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[role] = tok
	}
	return e
}

// call sends a request as role ("" for none) and returns the status and
// body; every body is kept for the leak checks.
func (e *webhookEnv) call(method, path, role, body string) (int, string) {
	e.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[role])
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	e.logs.Write([]byte("RESPONSE " + rec.Body.String() + "\n")) // searched for leaks with the logs
	return rec.Code, rec.Body.String()
}

func (e *webhookEnv) mustCall(method, path, role, body string, want int, out any) {
	e.t.Helper()
	code, got := e.call(method, path, role, body)
	if code != want {
		e.t.Fatalf("%s %s as %s: %d, want %d: %s", method, path, role, code, want, got)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(got), out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, got, err)
		}
	}
}

// startDispatcher delivers the store's notify jobs until stop is called
// or the test ends.
func (e *webhookEnv) startDispatcher() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	d := &notify.Dispatcher{Store: e.st, Key: e.key, Logger: slog.New(slog.NewTextHandler(e.logs, nil)), PollInterval: 5 * time.Millisecond}
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("Dispatcher.Run: %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *webhookEnv) deliveries(query string) []DeliveryView {
	var out struct{ Deliveries []DeliveryView }
	e.mustCall("GET", "/api/v1/webhooks/deliveries"+query, store.RoleViewer, "", 200, &out)
	return out.Deliveries
}

// waitDelivery polls the deliveries API until delivery id is in state.
func (e *webhookEnv) waitDelivery(id int64, state string) DeliveryView {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, d := range e.deliveries("?state=" + state) {
			if d.ID == id {
				return d
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("delivery %d not %s after 10 s: %+v", id, state, e.deliveries(""))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const (
	hookSecret = "hmac-secret-2f9c81d0e6a4b7"
	slackToken = "slack-token-7Qx93kLm"
	queryToken = "query-token-55ab"
)

// A webhook stored through the API: its view has the URL redacted and no
// secret; bad requests are refused with a clear message; delete works
// once; every mutation is audited without the secret.
func TestServerWebhooksCRUD(t *testing.T) {
	e := newWebhookEnv(t)
	var v WebhookView
	e.mustCall("POST", "/api/v1/webhooks", "admin", `{"name":"ci","url":"https://ci.example/hooks/bulwark?token=`+queryToken+`",
		"secret":"`+hookSecret+`","events":["certification.revoked","scan.failed","certification.revoked"]}`, 201, &v)
	if v.Name != "ci" || v.Kind != "generic" || v.URL != "https://ci.example/hooks/…" || v.Secret != "set" ||
		strings.Join(v.Events, ",") != "certification.revoked,scan.failed" || v.Created.IsZero() {
		t.Errorf("created = %+v", v)
	}
	v = WebhookView{}
	e.mustCall("POST", "/api/v1/webhooks", "admin", `{"name":"chat","kind":"slack","url":"https://hooks.slack.example/services/T0/B0/`+slackToken+`"}`, 201, &v)
	if v.URL != "https://hooks.slack.example/services/…" || v.Secret != "" || len(v.Events) != 0 {
		t.Errorf("slack webhook = %+v", v)
	}
	var list struct{ Webhooks []WebhookView }
	e.mustCall("GET", "/api/v1/webhooks", "viewer", "", 200, &list)
	if len(list.Webhooks) != 2 || list.Webhooks[0].Name != "chat" || list.Webhooks[1].Secret != "set" {
		t.Errorf("list = %+v", list.Webhooks)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"name":"x","url":"https://a.example/h"}`, `"secret" is required for a generic webhook`},
		{`{"name":"x","url":"https://a.example/h","secret":"short"}`, `"secret" must be 16 to 1024 bytes`},
		{`{"name":"x","url":"https://a.example/h","kind":"email","secret":"` + hookSecret + `"}`, `unknown webhook kind "email"`},
		{`{"name":"x","url":"https://a.example/h","secret":"` + hookSecret + `","events":["image.deleted"]}`, `unknown event type "image.deleted"`},
		{`{"name":"../x","url":"https://a.example/h","secret":"` + hookSecret + `"}`, `"name" must be`},
		{`{"name":"x","url":"ftp://a.example/h","secret":"` + hookSecret + `"}`, "scheme must be http or https"},
		{`{"name":"x","secret":"` + hookSecret + `"}`, `"url" is required`},
		{`{"name":"x","url":"https://a.example","secret":"` + hookSecret + `","extra":1}`, "unknown field"},
	} {
		code, body := e.call("POST", "/api/v1/webhooks", "admin", tc.body)
		var msg struct{ Error string }
		json.Unmarshal([]byte(body), &msg)
		if code != 400 || !strings.Contains(msg.Error, tc.want) {
			t.Errorf("POST %s: %d %s, want 400 %q", tc.body, code, body, tc.want)
		}
	}
	e.mustCall("DELETE", "/api/v1/webhooks/chat", "admin", "", 204, nil)
	if code, _ := e.call("DELETE", "/api/v1/webhooks/chat", "admin", ""); code != 404 {
		t.Errorf("second DELETE: %d, want 404", code)
	}
	if code, _ := e.call("POST", "/api/v1/webhooks/chat/test", "operator", ""); code != 404 {
		t.Errorf("testing a deleted webhook: %d, want 404", code)
	}
	// Audited: two puts and a delete, the chain intact, no secret in it.
	rows, err := e.st.DB().QueryContext(t.Context(), `SELECT action, object, before, after FROM audit_log ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var actions []string
	for rows.Next() {
		var action, object string
		var before, after []byte
		if err := rows.Scan(&action, &object, &before, &after); err != nil {
			t.Fatal(err)
		}
		actions = append(actions, action+" "+object)
		for _, s := range []string{hookSecret, slackToken, queryToken} {
			if bytes.Contains(before, []byte(s)) || bytes.Contains(after, []byte(s)) {
				t.Errorf("audit entry %s %s holds %q", action, object, s)
			}
		}
	}
	if got := strings.Join(actions, "; "); got != "webhook.put webhook:ci; webhook.put webhook:chat; webhook.delete webhook:chat" {
		t.Errorf("audit = %s", got)
	}
	if rep, err := audit.Verify(t.Context(), e.st.DB()); err != nil || !rep.OK {
		t.Errorf("audit.Verify = %+v, %v", rep, err)
	}
}

// Without the server's key a webhook cannot be stored.
func TestServerWebhookNeedsKey(t *testing.T) {
	e := newWebhookEnv(t)
	e.h.UseSealKey(nil)
	code, body := e.call("POST", "/api/v1/webhooks", "admin", `{"name":"ci","url":"https://ci.example/h","secret":"`+hookSecret+`"}`)
	if code != 503 || !strings.Contains(body, "no secret key") {
		t.Errorf("POST without a key: %d %s", code, body)
	}
}

// Mutating webhook routes refuse calls without a token (401) and below
// their role (403).
func TestServerWebhookRoles(t *testing.T) {
	e := newWebhookEnv(t)
	create := `{"name":"ci","url":"https://ci.example/h","secret":"` + hookSecret + `"}`
	for _, tc := range []struct {
		method, path, body string
		want               map[string]int
	}{
		{"POST", "/api/v1/webhooks", create, map[string]int{"": 401, "viewer": 403, "operator": 403, "admin": 201}},
		{"GET", "/api/v1/webhooks", "", map[string]int{"": 401, "viewer": 200}},
		{"GET", "/api/v1/webhooks/deliveries", "", map[string]int{"": 401, "viewer": 200}},
		{"POST", "/api/v1/webhooks/ci/test", "", map[string]int{"": 401, "viewer": 403, "operator": 202}},
		{"DELETE", "/api/v1/webhooks/ci", "", map[string]int{"": 401, "viewer": 403, "operator": 403, "admin": 204}},
	} {
		for _, role := range []string{"", "viewer", "operator", "admin"} {
			want, ok := tc.want[role]
			if !ok {
				continue
			}
			if got, body := e.call(tc.method, tc.path, role, tc.body); got != want {
				t.Errorf("%s %s as %q: %d, want %d: %s", tc.method, tc.path, role, got, want, body)
			}
		}
	}
	if code, _ := e.call("GET", "/api/v1/webhooks/deliveries?state=lost", "viewer", ""); code != 400 {
		t.Errorf("unknown state: %d, want 400", code)
	}
}

// Deliveries end to end: a receiver that always fails shows up in
// ?state=failed with its last error, one that answers shows up done, and
// the secret and URL tokens appear in no API answer, no log line and not
// in the database files.
func TestServerWebhookDeliveries(t *testing.T) {
	e := newWebhookEnv(t)
	e.st.MaxAttempts = 2
	var mu sync.Mutex
	var verified int
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := notify.VerifyRequest([]byte(hookSecret), r, 0); err != nil {
			t.Errorf("receiver: %v", err)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if r.URL.Query().Get("token") != queryToken {
			t.Errorf("receiver: token %q", r.URL.Query().Get("token"))
		}
		mu.Lock()
		verified++
		mu.Unlock()
	}))
	defer good.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Error(w, "database on fire", http.StatusInternalServerError)
	}))
	defer bad.Close()
	e.mustCall("POST", "/api/v1/webhooks", "admin", `{"name":"good","url":"`+good.URL+`/in?token=`+queryToken+`","secret":"`+hookSecret+`"}`, 201, nil)
	e.mustCall("POST", "/api/v1/webhooks", "admin", `{"name":"bad","kind":"slack","url":"`+bad.URL+`/services/T/B/`+slackToken+`"}`, 201, nil)

	// A revocation published the way the revocation paths do.
	ctx := t.Context()
	digest := "sha256:" + strings.Repeat("ab", 32)
	target := "sha256:" + strings.Repeat("cd", 32)
	for _, img := range []store.Image{{Digest: digest, Repository: "r.example/shop/api"}, {Digest: target, Repository: "r.example/shop/api"}} {
		if err := e.st.PutImage(ctx, img); err != nil {
			t.Fatal(err)
		}
	}
	e.st.SetTag(ctx, "r.example/shop/api", "2.0", digest)
	e.st.SetTag(ctx, "r.example/shop/api", "latest", digest)
	e.st.SetTag(ctx, "r.example/shop/api", "1.9", target)
	ev, err := RevocationEvent(ctx, e.st, digest, "CVE-2024-1234 (HIGH) in openssl 3.0.11", time.Now(), target)
	if err != nil {
		t.Fatal(err)
	}
	var rv notify.Revocation
	json.Unmarshal(ev.Data, &rv)
	if rv.Repository != "r.example/shop/api" || strings.Join(rv.Tags, ",") != "2.0,latest" ||
		rv.RollbackTarget != target || strings.Join(rv.RollbackTags, ",") != "1.9" {
		t.Errorf("RevocationEvent data = %+v", rv)
	}
	e.h.Notify(ctx, ev)
	var queued struct{ Delivery int64 }
	e.mustCall("POST", "/api/v1/webhooks/good/test", "operator", "", 202, &queued)

	all := e.deliveries("")
	if len(all) != 3 || all[0].ID != queued.Delivery || all[0].Event != notify.EventTest || all[0].NextAttempt == nil {
		t.Fatalf("deliveries before dispatch = %+v", all)
	}
	stop := e.startDispatcher()
	e.waitDelivery(queued.Delivery, store.JobDone)
	var failed DeliveryView
	for _, d := range all[1:] {
		if d.Webhook == "bad" {
			failed = e.waitDelivery(d.ID, store.JobFailed)
		} else {
			e.waitDelivery(d.ID, store.JobDone)
		}
	}
	if failed.Attempts != 2 || failed.Event != notify.EventRevoked || failed.Subject != "r.example/shop/api@"+digest ||
		!strings.Contains(failed.LastError, "/services/…: 500 Internal Server Error: database on fire") || failed.LastAttempt == nil {
		t.Errorf("failed delivery = %+v", failed)
	}
	if onlyBad := e.deliveries("?state=failed&webhook=bad"); len(onlyBad) != 1 || onlyBad[0].ID != failed.ID {
		t.Errorf("?state=failed&webhook=bad = %+v", onlyBad)
	}
	if got := e.deliveries("?webhook=good&limit=1"); len(got) != 1 || got[0].ID != queued.Delivery {
		t.Errorf("?webhook=good&limit=1 = %+v", got)
	}
	mu.Lock()
	if verified != 2 {
		t.Errorf("good receiver verified %d deliveries, want 2 (revocation and test)", verified)
	}
	mu.Unlock()

	// The leak checks: the API answers (kept in the log buffer), the logs,
	// the raw webhooks columns and the database files.
	e.call("GET", "/api/v1/webhooks", "viewer", "")
	var raw bytes.Buffer
	rows, err := e.st.DB().QueryContext(ctx, `SELECT url, secret FROM webhooks`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var u string
		var s []byte
		if err := rows.Scan(&u, &s); err != nil {
			t.Fatal(err)
		}
		if len(s) == 0 {
			t.Errorf("webhook %s has no sealed target", u)
		}
		raw.WriteString(u)
		raw.Write(s)
	}
	rows.Close()
	stop()
	e.st.Close() // checkpoints the WAL into the file
	for _, f := range []string{e.dbPath, e.dbPath + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		raw.Write(b)
	}
	if raw.Len() < 4096 {
		t.Fatalf("read only %d bytes of the database", raw.Len())
	}
	for _, s := range []string{hookSecret, slackToken, queryToken} {
		if strings.Contains(e.logs.String(), s) {
			t.Errorf("%q appears in an API answer or a log line", s)
		}
		if bytes.Contains(raw.Bytes(), []byte(s)) {
			t.Errorf("%q appears in the database in plaintext", s)
		}
	}
}
