package notify

import (
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	secret := []byte(testSecret)
	body := []byte(`{"type":"certification.revoked"}`)
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := Sign(secret, ts, body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("Sign = %q", sig)
	}
	if err := Verify(secret, sig, ts, body, 0); err != nil {
		t.Fatalf("Verify(own signature) = %v", err)
	}
	old := strconv.FormatInt(now.Add(-10*time.Minute).Unix(), 10)
	future := strconv.FormatInt(now.Add(10*time.Minute).Unix(), 10)
	for _, tc := range []struct {
		name              string
		secret            []byte
		header, timestamp string
		body              []byte
		want              error
	}{
		{"changed body", secret, sig, ts, []byte(`{"type":"certification.granted"}`), ErrSignature},
		{"wrong secret", []byte("another"), sig, ts, body, ErrSignature},
		{"timestamp changed", secret, sig, strconv.FormatInt(now.Unix()-1, 10), body, ErrSignature},
		{"old timestamp", secret, Sign(secret, old, body), old, body, ErrTimestamp},
		{"future timestamp", secret, Sign(secret, future, body), future, body, ErrTimestamp},
		{"no timestamp", secret, sig, "", body, ErrTimestamp},
		{"timestamp not a number", secret, sig, "yesterday", body, ErrTimestamp},
		{"no header", secret, "", ts, body, ErrSignature},
		{"other algorithm", secret, "sha1=" + strings.TrimPrefix(sig, "sha256="), ts, body, ErrSignature},
		{"short MAC", secret, sig[:40], ts, body, ErrSignature},
		{"not hex", secret, "sha256=" + strings.Repeat("zz", 32), ts, body, ErrSignature},
	} {
		if err := Verify(tc.secret, tc.header, tc.timestamp, tc.body, 0); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", tc.name, err, tc.want)
		}
	}
	// A wider skew accepts the old one.
	if err := Verify(secret, Sign(secret, old, body), old, body, time.Hour); err != nil {
		t.Errorf("old timestamp with 1 h skew: %v", err)
	}
	// VerifyRequest reads and checks a request.
	r := httptest.NewRequest("POST", "/hook", strings.NewReader(string(body)))
	r.Header.Set(HeaderTimestamp, ts)
	r.Header.Set(HeaderSignature, sig)
	if got, err := VerifyRequest(secret, r, 0); err != nil || string(got) != string(body) {
		t.Errorf("VerifyRequest = %q, %v", got, err)
	}
	r = httptest.NewRequest("POST", "/hook", strings.NewReader(string(body)+" "))
	r.Header.Set(HeaderTimestamp, ts)
	r.Header.Set(HeaderSignature, sig)
	if _, err := VerifyRequest(secret, r, 0); !errors.Is(err, ErrSignature) {
		t.Errorf("VerifyRequest(changed body) = %v", err)
	}
}

// Verify never panics on what a sender controls, accepts what Sign made
// and refuses it for any other body.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("secret"), "sha256=00", "1700000000", []byte(`{}`))
	f.Add([]byte(""), "", "", []byte(""))
	f.Add([]byte(testSecret), "sha256="+strings.Repeat("ab", 32), "-9223372036854775808", []byte(`{"id":"evt"}`))
	f.Add([]byte("k"), "sha256="+strings.Repeat("AB", 32)+" ", "+1", []byte("x"))
	f.Fuzz(func(t *testing.T, secret []byte, header, timestamp string, body []byte) {
		now := time.Unix(1700000000, 0)
		err := verifyAt(now, secret, header, timestamp, body, time.Hour)
		if err == nil && !strings.EqualFold(strings.TrimSpace(header), Sign(secret, timestamp, body)) {
			t.Fatalf("accepted header %q that Sign did not make", header)
		}
		ts := strconv.FormatInt(now.Unix(), 10)
		if err := verifyAt(now, secret, Sign(secret, ts, body), ts, body, 0); err != nil {
			t.Fatalf("refused its own signature: %v", err)
		}
		if err := verifyAt(now, secret, Sign(secret, ts, body), ts, append(body, 'x'), 0); !errors.Is(err, ErrSignature) {
			t.Fatalf("accepted a changed body: %v", err)
		}
	})
}
