package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of a delivery.
const (
	HeaderEvent     = "X-Bulwark-Event"     // the event type
	HeaderDelivery  = "X-Bulwark-Delivery"  // the delivery (job) id, the same on every retry
	HeaderTimestamp = "X-Bulwark-Timestamp" // Unix seconds when this attempt was signed
	HeaderSignature = "X-Bulwark-Signature" // "sha256=" + hex HMAC-SHA256 of "timestamp.body"
)

// DefaultMaxSkew is how old (or how far in the future) a signed timestamp
// Verify accepts when given 0.
const DefaultMaxSkew = 5 * time.Minute

// Verification failures, for errors.Is.
var (
	ErrSignature = errors.New("webhook signature does not match")
	ErrTimestamp = errors.New("webhook timestamp missing, malformed or outside the allowed skew")
)

// Sign is the X-Bulwark-Signature value of body sent at timestamp (Unix
// seconds, as in X-Bulwark-Timestamp): "sha256=" and the hex HMAC-SHA256,
// keyed with secret, of timestamp + "." + body.
func Sign(secret []byte, timestamp string, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	io.WriteString(m, timestamp)
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a delivery as a receiver gets it: header is
// X-Bulwark-Signature, timestamp X-Bulwark-Timestamp, body the raw request
// body. The timestamp must be within maxSkew of now (0 means
// DefaultMaxSkew), so a captured request cannot be replayed later; the
// MAC is compared in constant time. The error wraps ErrTimestamp or
// ErrSignature.
func Verify(secret []byte, header, timestamp string, body []byte, maxSkew time.Duration) error {
	return verifyAt(time.Now(), secret, header, timestamp, body, maxSkew)
}

func verifyAt(now time.Time, secret []byte, header, timestamp string, body []byte, maxSkew time.Duration) error {
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || len(timestamp) > 19 {
		return fmt.Errorf("%w: %q is not Unix seconds", ErrTimestamp, clip(timestamp))
	}
	skew := now.Sub(time.Unix(sec, 0))
	if skew < -maxSkew || skew > maxSkew {
		return fmt.Errorf("%w: signed %v ago, more than %v", ErrTimestamp, skew.Round(time.Second), maxSkew)
	}
	hexMAC, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok {
		return fmt.Errorf("%w: header is not sha256=<hex>", ErrSignature)
	}
	got, err := hex.DecodeString(hexMAC)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: header is not sha256=<64 hex digits>", ErrSignature)
	}
	if !hmac.Equal(got, mac(secret, timestamp, body)) {
		return ErrSignature
	}
	return nil
}

// MaxBody bounds the body VerifyRequest reads.
const MaxBody = 1 << 20

// VerifyRequest reads r's body (at most MaxBody bytes) and verifies it with
// Verify; it returns the body only when the signature holds.
func VerifyRequest(secret []byte, r *http.Request, maxSkew time.Duration) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading the webhook body: %w", err)
	}
	if len(body) > MaxBody {
		return nil, fmt.Errorf("webhook body larger than %d bytes", MaxBody)
	}
	if err := Verify(secret, r.Header.Get(HeaderSignature), r.Header.Get(HeaderTimestamp), body, maxSkew); err != nil {
		return nil, err
	}
	return body, nil
}

// clip shortens untrusted text quoted in an error.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
