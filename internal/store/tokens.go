package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Roles of API tokens, from least to most privileged.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
	RoleAdmin    = "admin"
)

// TokenPrefix starts every API token, so that secret scanners and people
// recognise one.
const TokenPrefix = "bwk_"

// ErrUnauthenticated is returned by Authenticate for an unknown, malformed
// or revoked token. It says nothing about which.
var ErrUnauthenticated = errors.New("invalid API token")

// CreateToken makes an API token called name with role and returns its id
// and the token itself: "bwk_" and 32 random bytes in unpadded base64url.
// The token is shown only now; the store keeps its SHA-256.
func (s *Store) CreateToken(ctx context.Context, name, role string) (id int64, token string, err error) {
	switch role {
	case RoleViewer, RoleOperator, RoleAdmin:
	default:
		return 0, "", fmt.Errorf("creating token %q: unknown role %q", name, role)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return 0, "", fmt.Errorf("creating token %q: %w", name, err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(secret)
	h := sha256.Sum256([]byte(token))
	err = s.db.QueryRowContext(ctx, s.d.q(`INSERT INTO api_tokens (name, role, hash, created)
		VALUES (?, ?, ?, ?) RETURNING id`), name, role, h[:], formatTime(s.now())).Scan(&id)
	if err != nil {
		return 0, "", fmt.Errorf("creating token %q: %w", name, err)
	}
	return id, token, nil
}

// Authenticate returns the role of token and the token's id, or
// ErrUnauthenticated. The row is found by the token's SHA-256 and the
// stored hash compared in constant time; last_used is updated.
func (s *Store) Authenticate(ctx context.Context, token string) (role string, id int64, err error) {
	if !strings.HasPrefix(token, TokenPrefix) {
		return "", 0, ErrUnauthenticated
	}
	h := sha256.Sum256([]byte(token))
	var stored []byte
	err = s.db.QueryRowContext(ctx, s.d.q(`SELECT id, role, hash FROM api_tokens
		WHERE hash = ? AND revoked = ''`), h[:]).Scan(&id, &role, &stored)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, ErrUnauthenticated
	}
	if err != nil {
		return "", 0, fmt.Errorf("authenticating: %w", err)
	}
	if subtle.ConstantTimeCompare(stored, h[:]) != 1 {
		return "", 0, ErrUnauthenticated
	}
	if _, err := s.db.ExecContext(ctx, s.d.q(`UPDATE api_tokens SET last_used = ? WHERE id = ?`),
		formatTime(s.now()), id); err != nil {
		return "", 0, fmt.Errorf("authenticating: %w", err)
	}
	return role, id, nil
}

// RevokeToken revokes the token id; the row stays for the record.
func (s *Store) RevokeToken(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, s.d.q(`UPDATE api_tokens SET revoked = ? WHERE id = ? AND revoked = ''`),
		formatTime(s.now()), id)
	if err != nil {
		return fmt.Errorf("revoking token %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("revoking token %d: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("revoking token %d: %w", id, ErrNotFound)
	}
	return nil
}

// ActiveToken returns the role of the token id while it is not revoked,
// else ErrUnauthenticated; last_used is updated. The console checks its
// sessions with it on every request, so revoking a token ends them (token
// rows are never deleted, so an id is never reused for another token).
func (s *Store) ActiveToken(ctx context.Context, id int64) (role string, err error) {
	err = s.db.QueryRowContext(ctx, s.d.q(`SELECT role FROM api_tokens WHERE id = ? AND revoked = ''`), id).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrUnauthenticated
	}
	if err != nil {
		return "", fmt.Errorf("checking token %d: %w", id, err)
	}
	if _, err := s.db.ExecContext(ctx, s.d.q(`UPDATE api_tokens SET last_used = ? WHERE id = ?`),
		formatTime(s.now()), id); err != nil {
		return "", fmt.Errorf("checking token %d: %w", id, err)
	}
	return role, nil
}
