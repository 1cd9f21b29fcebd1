package store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTokens(t *testing.T) { eachBackend(t, testTokens) }

func testTokens(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, c := newStore(t)
	id, token, err := s.CreateToken(ctx, "ci", RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	secret, ok := strings.CutPrefix(token, TokenPrefix)
	if raw, err := base64.RawURLEncoding.DecodeString(secret); !ok || err != nil || len(raw) != 32 {
		t.Errorf("token %q is not bwk_ + 32 bytes base64url", token)
	}
	var stored []byte
	s.DB().QueryRow(`SELECT hash FROM api_tokens WHERE id = $1`, id).Scan(&stored)
	if h := sha256.Sum256([]byte(token)); string(stored) != string(h[:]) {
		t.Error("the stored hash is not the token's SHA-256")
	}
	var plain int
	s.DB().QueryRow(s.d.q(map[string]string{
		"sqlite":   `SELECT COUNT(*) FROM api_tokens WHERE instr(CAST(hash AS TEXT), ?) > 0 OR name = ?`,
		"postgres": `SELECT COUNT(*) FROM api_tokens WHERE strpos(encode(hash, 'escape'), ?) > 0 OR name = ?`,
	}[s.Dialect()]), secret, token).Scan(&plain)
	if plain != 0 {
		t.Error("the plaintext token is stored")
	}

	c.Advance(time.Minute)
	role, gotID, err := s.Authenticate(ctx, token)
	if err != nil || role != RoleOperator || gotID != id {
		t.Errorf("Authenticate = %q, %d, %v; want operator, %d", role, gotID, err, id)
	}
	var lastUsed string
	s.DB().QueryRow(`SELECT last_used FROM api_tokens WHERE id = $1`, id).Scan(&lastUsed)
	if !parseTime(lastUsed).Equal(c.Now()) {
		t.Errorf("last_used = %q, want %v", lastUsed, c.Now())
	}

	for _, bad := range []string{"", "bwk_", token + "x", strings.TrimPrefix(token, TokenPrefix), TokenPrefix + strings.Repeat("A", 43)} {
		if _, _, err := s.Authenticate(ctx, bad); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("Authenticate(%q) = %v, want ErrUnauthenticated", bad, err)
		}
	}

	_, other, err := s.CreateToken(ctx, "admin", RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Authenticate(ctx, token); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("a revoked token authenticated: %v", err)
	}
	if role, _, err := s.Authenticate(ctx, other); err != nil || role != RoleAdmin {
		t.Errorf("revoking one token broke another: %q, %v", role, err)
	}
	if err := s.RevokeToken(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking twice: %v, want ErrNotFound", err)
	}
	if _, _, err := s.CreateToken(ctx, "x", "root"); err == nil {
		t.Error("an unknown role was accepted")
	}
}

// ActiveToken (the console's per-request check of a session's token) gives
// the role of an unrevoked token, marks it used, and refuses a revoked or
// unknown id.
func TestActiveToken(t *testing.T) { eachBackend(t, testActiveToken) }

func testActiveToken(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, c := newStore(t)
	id, _, err := s.CreateToken(ctx, "console", RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	if role, err := s.ActiveToken(ctx, id); err != nil || role != RoleViewer {
		t.Errorf("ActiveToken = %q, %v; want viewer", role, err)
	}
	var lastUsed string
	s.DB().QueryRow(`SELECT last_used FROM api_tokens WHERE id = $1`, id).Scan(&lastUsed)
	if !parseTime(lastUsed).Equal(c.Now()) {
		t.Errorf("last_used = %q, want %v", lastUsed, c.Now())
	}
	if err := s.RevokeToken(ctx, id); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []int64{id, id + 100, 0, -1} {
		if _, err := s.ActiveToken(ctx, bad); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("ActiveToken(%d) = %v, want ErrUnauthenticated", bad, err)
		}
	}
}
