package fuzz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Backpressure: a 429 is the server's rate limit, not an answer to the
// request; it is waited out (Retry-After, at most maxRetryAfter) and the
// request sent again, up to retries429 times, before it counts.
const (
	retries429    = 3
	maxRetryAfter = 5 * time.Second
)

// send sends r within the budget, waiting out 429s.
func (c *campaign) send(ctx context.Context, r Request, cr creds) (*exchange, error) {
	for attempt := 0; ; attempt++ {
		ex, err := c.sendOnce(ctx, r, cr)
		if err != nil || ex == nil || ex.status != http.StatusTooManyRequests || attempt == retries429 {
			return ex, err
		}
		wait := time.Second
		if secs, err := strconv.Atoi(http.Header(ex.header).Get("Retry-After")); err == nil && secs >= 0 {
			wait = min(time.Duration(secs)*time.Second, maxRetryAfter)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			c.res.Stop = "duration"
			return nil, errBudget
		}
	}
}

// sendOnce sends r within the budget.
func (c *campaign) sendOnce(ctx context.Context, r Request, cr creds) (*exchange, error) {
	if c.sent >= c.opts.MaxRequests {
		c.res.Stop = "max-requests"
		return nil, errBudget
	}
	if err := c.pace(ctx); err != nil {
		return nil, err
	}
	req, err := c.build(ctx, r, cr)
	if err != nil {
		return nil, nil
	}
	c.sent++
	c.remember(r)
	rctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	req = req.WithContext(rctx)
	t0 := time.Now()
	resp, err := c.client.Do(req)
	ex := &exchange{}
	if err == nil {
		ex.status, ex.header = resp.StatusCode, resp.Header
		c.res.Statuses[resp.StatusCode]++
		if c.res.Coverage[r.Op] == nil {
			c.res.Coverage[r.Op] = map[int]int{}
		}
		c.res.Coverage[r.Op][resp.StatusCode]++
		ex.body, err = io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
		resp.Body.Close()
	}
	ex.elapsed = time.Since(t0)
	if err != nil {
		if ctx.Err() != nil {
			c.res.Stop = "duration"
			return nil, errBudget
		}
		var oe *net.OpError
		if len(c.res.Statuses) == 0 && errors.As(err, &oe) && oe.Op == "dial" {
			return nil, fmt.Errorf("fuzzing %s: %w: %v", c.opts.Target, ErrTargetUnreachable, err)
		}
		ex.err = err
		c.res.TransportErrors++
		var ne net.Error
		ex.timeout = errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
	}
	return ex, nil
}

// pace waits for the rate limit and checks the time budget.
func (c *campaign) pace(ctx context.Context) error {
	if ctx.Err() != nil {
		c.res.Stop = "duration"
		return errBudget
	}
	if c.opts.Rate <= 0 {
		return nil
	}
	at := c.start.Add(time.Duration(float64(c.sent) / c.opts.Rate * float64(time.Second)))
	if d := time.Until(at); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			c.res.Stop = "duration"
			return errBudget
		}
	}
	return nil
}

// remember notes the strings a request sends, so that echoes of them are
// not reported as data leaks.
func (c *campaign) remember(r Request) {
	for _, v := range r.PathValues {
		c.chk.sent[v] = true
	}
	for _, p := range slices.Concat(r.Query, r.Header) {
		c.chk.sent[p.Value] = true
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			c.chk.sent[x] = true
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(r.Body)
}

// url is the request's URL under the target.
func (c *campaign) url(r Request) string {
	base := strings.TrimSuffix(c.base.String(), "/")
	if strings.Trim(c.base.Path, "/") == "" {
		base += c.spec.BasePath
	}
	path := r.Path
	for name, v := range r.PathValues {
		path = strings.ReplaceAll(path, "{"+name+"}", url.PathEscape(v))
	}
	u := base + path
	if len(r.Query) > 0 {
		q := make([]string, len(r.Query))
		for i, p := range r.Query {
			q[i] = url.QueryEscape(p.Name) + "=" + url.QueryEscape(p.Value)
		}
		u += "?" + strings.Join(q, "&")
	}
	return u
}

func (r Request) bodyBytes() ([]byte, bool) {
	if r.Raw != "" {
		return []byte(r.Raw), true
	}
	if !r.HasBody {
		return nil, false
	}
	b, err := json.Marshal(r.Body)
	if err != nil {
		return []byte(fmt.Sprint(r.Body)), true
	}
	return b, true
}

func (c *campaign) build(ctx context.Context, r Request, cr creds) (*http.Request, error) {
	var body io.Reader
	b, has := r.bodyBytes()
	if has {
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, c.url(r), body)
	if err != nil {
		return nil, fmt.Errorf("building %s %s: %w", r.Method, r.Path, err)
	}
	req.Header.Set("User-Agent", "bulwark-fuzz")
	if has {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range r.Header {
		req.Header.Set(h.Name, h.Value)
	}
	for _, h := range c.authHeaders(cr) {
		req.Header.Set(h.Name, h.Value)
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			if !validHeader(k, v) {
				return nil, fmt.Errorf("building %s %s: header %q: invalid value", r.Method, r.Path, k)
			}
		}
	}
	return req, nil
}

// authHeaders are the credential headers for cr.
func (c *campaign) authHeaders(cr creds) []Pair {
	switch cr {
	case credsConfigured:
		return c.opts.Auth
	case credsGarbage:
		if len(c.opts.Auth) == 0 {
			return []Pair{{"Authorization", "Bearer " + garbageToken}}
		}
		out := make([]Pair, len(c.opts.Auth))
		for i, a := range c.opts.Auth {
			v := garbageToken
			if scheme, _, ok := strings.Cut(a.Value, " "); ok {
				v = scheme + " " + garbageToken
			}
			out[i] = Pair{a.Name, v}
		}
		return out
	}
	return nil
}

// validHeader reports whether net/http would send the header: no control
// characters but tab.
func validHeader(name, v string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if b := v[i]; (b < ' ' && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}
