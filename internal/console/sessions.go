package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-sec/bulwark/internal/store"
)

// Session limits; Options can change the first three.
const (
	defaultSessionLength = 8 * time.Hour
	defaultSessionIdle   = time.Hour
	defaultMaxSessions   = 10_000
	// maxSessionsPerToken bounds one token's sessions, so that a holder of
	// any valid token who logs in in a loop evicts only their own sessions,
	// not everyone else's.
	maxSessionsPerToken = 64
)

// SessionStore keeps console sessions (store.Store): under the SHA-256
// of the session id, never the id, naming the token, never holding it.
// In the store, so replicas sharing a database all know a session.
type SessionStore interface {
	CreateConsoleSession(ctx context.Context, key string, tokenID int64, now time.Time, perToken, max int) error
	ConsoleSession(ctx context.Context, key string) (store.ConsoleSession, error)
	TouchConsoleSession(ctx context.Context, key string, now time.Time) error
	EndConsoleSession(ctx context.Context, key string) error
}

// sessions are the console's logins: ids made here, kept in the store by
// their hash, expired here (idle and absolute limits on the console's
// clock).
type sessions struct {
	st       SessionStore
	max      int
	idle     time.Duration
	absolute time.Duration
	now      func() time.Time
}

// sessionKey is what the store keeps of a session id: its SHA-256, so a
// lookup's timing and a database reader learn nothing of the id.
func sessionKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// create starts a session for the token id and returns the session id for
// the cookie: 32 random bytes, unpadded base64url.
func (s *sessions) create(ctx context.Context, tokenID int64) (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("making a session id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(raw)
	if err := s.st.CreateConsoleSession(ctx, sessionKey(id), tokenID, s.now(), maxSessionsPerToken, s.max); err != nil {
		return "", err
	}
	return id, nil
}

// lookup returns the live session of id and marks it seen; false for an
// unknown, idle or too old one (which is then deleted).
func (s *sessions) lookup(ctx context.Context, id string) (store.ConsoleSession, bool, error) {
	key := sessionKey(id)
	ses, err := s.st.ConsoleSession(ctx, key)
	if errors.Is(err, store.ErrNoSession) {
		return store.ConsoleSession{}, false, nil
	}
	if err != nil {
		return store.ConsoleSession{}, false, err
	}
	now := s.now()
	if now.Sub(ses.LastSeen) >= s.idle || now.Sub(ses.Created) >= s.absolute {
		return store.ConsoleSession{}, false, s.st.EndConsoleSession(ctx, key)
	}
	return ses, true, s.st.TouchConsoleSession(ctx, key, now)
}

// end deletes the session of id, if there is one.
func (s *sessions) end(ctx context.Context, id string) error {
	return s.st.EndConsoleSession(ctx, sessionKey(id))
}
