package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The web console's logins. A session is kept under the SHA-256 of its id
// (hex), never the id, which lives only in the browser's cookie; it names
// the API token that logged in, never holds it. Kept in the store, not in
// one process's memory, so that replicas sharing a PostgreSQL database
// answer a browser's session whichever one its request reaches.
var consoleSessionsSchema = `CREATE TABLE console_sessions (
	key       TEXT PRIMARY KEY,
	token_id  BIGINT NOT NULL,
	created   TEXT NOT NULL,
	last_seen TEXT NOT NULL
);
CREATE INDEX console_sessions_created ON console_sessions (created);
CREATE INDEX console_sessions_token ON console_sessions (token_id, created);`

// ConsoleSession is a console login as the store keeps it.
type ConsoleSession struct {
	TokenID  int64
	Created  time.Time
	LastSeen time.Time
}

// ErrNoSession is a console session the store does not hold.
var ErrNoSession = errors.New("no such console session")

// CreateConsoleSession records a login at now under key, keeping at most
// perToken sessions of the token and max sessions in all: the oldest go
// first (the token's own first), so one token logging in over and over
// evicts only its own sessions.
func (s *Store) CreateConsoleSession(ctx context.Context, key string, tokenID int64, now time.Time, perToken, max int) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.evictSessions(ctx, tx, `WHERE token_id = ?`, perToken, tokenID); err != nil {
			return err
		}
		if err := s.evictSessions(ctx, tx, ``, max); err != nil {
			return err
		}
		at := formatTime(now)
		_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO console_sessions (key, token_id, created, last_seen) VALUES (?, ?, ?, ?)`),
			key, tokenID, at, at)
		return err
	})
	if err != nil {
		return fmt.Errorf("recording a console session: %w", err)
	}
	return nil
}

// evictSessions deletes the oldest sessions matching where until fewer
// than keep are left, so that one more fits.
func (s *Store) evictSessions(ctx context.Context, tx *sql.Tx, where string, keep int, args ...any) error {
	var n int
	if err := tx.QueryRowContext(ctx, s.d.q(`SELECT COUNT(*) FROM console_sessions `+where), args...).Scan(&n); err != nil {
		return err
	}
	if n < keep {
		return nil
	}
	_, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM console_sessions WHERE key IN
		(SELECT key FROM console_sessions `+where+` ORDER BY created, key LIMIT ?)`), append(args, n-keep+1)...)
	return err
}

// ConsoleSession returns the session kept under key (ErrNoSession when
// none).
func (s *Store) ConsoleSession(ctx context.Context, key string) (ConsoleSession, error) {
	var ses ConsoleSession
	var created, seen string
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT token_id, created, last_seen FROM console_sessions WHERE key = ?`), key).
		Scan(&ses.TokenID, &created, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return ConsoleSession{}, ErrNoSession
	}
	if err != nil {
		return ConsoleSession{}, fmt.Errorf("reading a console session: %w", err)
	}
	ses.Created, ses.LastSeen = parseTime(created), parseTime(seen)
	return ses, nil
}

// TouchConsoleSession marks the session under key used at now.
func (s *Store) TouchConsoleSession(ctx context.Context, key string, now time.Time) error {
	if _, err := s.db.ExecContext(ctx, s.d.q(`UPDATE console_sessions SET last_seen = ? WHERE key = ?`), formatTime(now), key); err != nil {
		return fmt.Errorf("marking a console session used: %w", err)
	}
	return nil
}

// EndConsoleSession deletes the session under key, if there is one.
func (s *Store) EndConsoleSession(ctx context.Context, key string) error {
	if _, err := s.db.ExecContext(ctx, s.d.q(`DELETE FROM console_sessions WHERE key = ?`), key); err != nil {
		return fmt.Errorf("ending a console session: %w", err)
	}
	return nil
}

// ConsoleSessions counts the sessions kept, expired ones included.
func (s *Store) ConsoleSessions(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM console_sessions`).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting console sessions: %w", err)
	}
	return n, nil
}
