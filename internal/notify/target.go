package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Target is where and how a webhook is delivered: its full URL and its
// HMAC secret. It is stored sealed in the webhook's secret column, with
// the context "webhook:<name>", because a Slack URL (and many a generic
// one) carries its own token.
type Target struct {
	URL    string `json:"url"`
	Secret string `json:"secret,omitempty"` // "" for an unsigned (Slack) webhook
}

// sealContext binds a sealed target to its webhook's row.
func sealContext(name string) string { return "webhook:" + name }

// ErrNoKey is returned when a webhook is stored or delivered without the
// server's secret key.
var ErrNoKey = errors.New("no secret key: webhook targets are sealed with the server's key (see docs/server.md)")

// SealTarget seals t for the webhook called name.
func SealTarget(k *seal.Key, name string, t Target) ([]byte, error) {
	if k == nil {
		return nil, ErrNoKey
	}
	b, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	sealed, err := k.Seal(b, sealContext(name))
	if err != nil {
		return nil, fmt.Errorf("sealing the target of webhook %q: %w", name, err)
	}
	return sealed, nil
}

// OpenTarget opens w's sealed target.
func OpenTarget(k *seal.Key, w store.Webhook) (Target, error) {
	if k == nil {
		return Target{}, ErrNoKey
	}
	if len(w.Secret) == 0 {
		return Target{}, fmt.Errorf("webhook %q has no sealed target; store it again through the API", w.Name)
	}
	b, err := k.Open(w.Secret, sealContext(w.Name))
	if err != nil {
		return Target{}, fmt.Errorf("opening the target of webhook %q: %w", w.Name, err)
	}
	var t Target
	if err := json.Unmarshal(b, &t); err != nil || t.URL == "" {
		return Target{}, fmt.Errorf("opening the target of webhook %q: not a target", w.Name)
	}
	return t, nil
}

// ParseURL checks a webhook URL: http or https, a host, no fragment.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("webhook URL is not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("webhook URL: scheme must be http or https")
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("webhook URL: no host")
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("webhook URL: fragments are not sent; remove #%s", u.Fragment)
	}
	return u, nil
}

// RedactURL is the form of a webhook URL that may be shown and logged:
// scheme, host and the first path segment, the rest of the path or the
// query elided, user info dropped. "https://hooks.slack.com/services/T0/B0/XXXX" is
// "https://hooks.slack.com/services/…". A URL that does not parse is "…".
func RedactURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return "…"
	}
	out := u.Scheme + "://" + u.Host
	path := strings.TrimPrefix(u.EscapedPath(), "/")
	first, rest, more := strings.Cut(path, "/")
	if first != "" {
		out += "/" + first
	}
	switch {
	case more && rest != "":
		out += "/…"
	case u.RawQuery != "":
		out += "?…"
	}
	return out
}
