package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/spool"
	"github.com/bulwark-sec/bulwark/internal/tokenfile"
)

// Sender timing: a batch goes out as soon as events wait; a failed send is
// retried with doubling backoff up to maxBackoff.
const (
	minBackoff   = 200 * time.Millisecond
	maxBackoff   = 30 * time.Second
	batchBytes   = 2 << 20
	sendTimeout  = 30 * time.Second
	maxReplyBody = 64 << 10
)

// SenderConfig configures the events client.
type SenderConfig struct {
	// URL is the server's base URL (https://bulwark.example:8443).
	URL string
	// Token is a bearer token of role operator; Tokens, when set, hands
	// out the current one instead (a token file the kubelet rotates).
	Token  string
	Tokens *tokenfile.Source
	Node   string
	Spool  *spool.Spool
	// Client is the HTTP client; nil is one with a 30 s timeout.
	Client *http.Client
	// Heartbeat describes the node; nil sends no heartbeat.
	Heartbeat      func() agentproto.Heartbeat
	HeartbeatEvery time.Duration // zero: 30 s
	Log            *slog.Logger
}

// Sender sends drift events to the server in batches, in seq order, at
// least once: an event is appended to the spool on disk when it happens
// and removed only when the server has acknowledged its batch, so a
// server outage or an agent restart loses none (only the spool's bound
// drops, counted). The server stores each (node, spool, seq) once, so a
// batch resent after a lost acknowledgement is not doubled.
type Sender struct {
	cfg SenderConfig

	sent, failed, appendErr atomic.Int64
	mu                      sync.Mutex
	lastSend, lastHeartbeat time.Time
	lastErr                 string
}

// NewSender returns a sender over cfg.
func NewSender(cfg SenderConfig) *Sender {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: sendTimeout}
	}
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	return &Sender{cfg: cfg}
}

// Report spools one event; it never blocks on the network.
func (s *Sender) Report(e Event) {
	b, _ := json.Marshal(agentproto.Event{Time: e.Time, Verdict: string(e.Verdict), Reason: e.Reason, PID: e.PID,
		Path: e.Path, Digest: e.Digest, Container: e.Container, Namespace: e.Namespace, Image: e.Image, Error: e.Err, Tree: e.Tree})
	if _, err := s.cfg.Spool.Append(b); err != nil {
		s.appendErr.Add(1)
		s.cfg.Log.Error("spooling a drift event", "error", err)
	}
}

// SenderStats are the sender's figures.
type SenderStats struct {
	Sent, Failed, AppendErrors int64
	LastSend, LastHeartbeat    time.Time
	LastError                  string
}

// Stats returns the sender's figures.
func (s *Sender) Stats() SenderStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SenderStats{Sent: s.sent.Load(), Failed: s.failed.Load(), AppendErrors: s.appendErr.Load(),
		LastSend: s.lastSend, LastHeartbeat: s.lastHeartbeat, LastError: s.lastErr}
}

// Run sends spooled events and heartbeats until ctx ends.
func (s *Sender) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if s.cfg.Heartbeat != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.heartbeats(ctx) }()
	}
	defer wg.Wait()
	backoff := time.Duration(0)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if backoff > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
		}
		sentAll, err := s.drain(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.failed.Add(1)
			s.setErr(err)
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			s.cfg.Log.Warn("sending drift events", "error", err, "retry_in", backoff.String())
			continue
		}
		backoff = 0
		if sentAll {
			select {
			case <-ctx.Done():
				return nil
			case <-s.cfg.Spool.Ready():
			case <-tick.C:
			}
		}
	}
}

// drain sends one batch; sentAll reports that nothing more waits.
func (s *Sender) drain(ctx context.Context) (sentAll bool, err error) {
	recs, err := s.cfg.Spool.Peek(agentproto.MaxEvents, batchBytes)
	if err != nil || len(recs) == 0 {
		return true, err
	}
	st := s.cfg.Spool.Stats()
	b := agentproto.Batch{Node: s.cfg.Node, Spool: st.ID, Dropped: st.Dropped, Events: make([]agentproto.Event, 0, len(recs))}
	for _, r := range recs {
		var e agentproto.Event
		if err := json.Unmarshal(r.Data, &e); err != nil {
			// Not something this agent wrote: skip it rather than stall.
			s.cfg.Log.Error("skipping an unreadable spooled event", "seq", r.Seq, "error", err)
			continue
		}
		e.Seq = r.Seq
		b.Events = append(b.Events, e)
	}
	last := recs[len(recs)-1].Seq
	if len(b.Events) > 0 {
		var got struct {
			Acked uint64 `json:"acked"`
		}
		if err := s.post(ctx, agentproto.EventsPath, b, &got); err != nil {
			return false, err
		}
		if got.Acked != last {
			return false, fmt.Errorf("the server acknowledged seq %d, not %d", got.Acked, last)
		}
		s.sent.Add(int64(len(b.Events)))
	}
	if err := s.cfg.Spool.Ack(last); err != nil {
		return false, err
	}
	s.mu.Lock()
	s.lastSend, s.lastErr = time.Now().UTC(), ""
	s.mu.Unlock()
	return len(recs) < agentproto.MaxEvents && s.cfg.Spool.Stats().Pending == 0, nil
}

func (s *Sender) heartbeats(ctx context.Context) {
	t := time.NewTicker(s.cfg.HeartbeatEvery)
	defer t.Stop()
	for {
		hb := s.cfg.Heartbeat()
		hb.Node = s.cfg.Node
		if err := s.post(ctx, agentproto.HeartbeatPath, hb, nil); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.setErr(err)
			s.cfg.Log.Warn("sending a heartbeat", "error", err)
		} else {
			s.mu.Lock()
			s.lastHeartbeat = time.Now().UTC()
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// token is the bearer token to send now.
func (s *Sender) token() string {
	if s.cfg.Tokens != nil {
		return s.cfg.Tokens.Token()
	}
	return s.cfg.Token
}

func (s *Sender) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
}

// post sends body as JSON to path and decodes a 200 answer into out.
func (s *Sender) post(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("posting to %q: %w", s.cfg.URL+path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	token := s.token()
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("posting to %q: %w", s.cfg.URL+path, err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, maxReplyBody))
	if resp.StatusCode == http.StatusUnauthorized {
		s.cfg.Tokens.Refused(token)
	}
	if resp.StatusCode != http.StatusOK {
		return &ServerError{Status: resp.StatusCode, Body: strings.TrimSpace(string(reply))}
	}
	if out != nil {
		if err := json.Unmarshal(reply, out); err != nil {
			return fmt.Errorf("decoding the answer of %q: %w", s.cfg.URL+path, err)
		}
	}
	return nil
}

// ServerError is a refusal by the server. Every one is retried: a batch
// the server refuses stays in the spool (bounded) rather than being lost,
// and the error says why in the log, the status file and the metrics.
type ServerError struct {
	Status int
	Body   string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("the server answered %d: %s", e.Status, e.Body)
}
