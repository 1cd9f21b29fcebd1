package console

import (
	"container/list"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sync"
	"time"
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

// session is what the server keeps of a login: never the API token, nor
// the session id itself (the map is keyed by its SHA-256). The role is
// read from the store on each request, with the revocation check.
type session struct {
	key      [sha256.Size]byte
	tokenID  int64
	created  time.Time
	lastSeen time.Time
}

// sessions is the in-memory table of console logins, oldest first. A
// restart forgets every session (everyone logs in again).
type sessions struct {
	mu       sync.Mutex
	byKey    map[[sha256.Size]byte]*list.Element
	order    *list.List // of *session, by creation
	perToken map[int64]int
	max      int
	idle     time.Duration
	absolute time.Duration
	now      func() time.Time
}

func newSessions(max int, idle, absolute time.Duration, now func() time.Time) *sessions {
	return &sessions{
		byKey: map[[sha256.Size]byte]*list.Element{}, order: list.New(), perToken: map[int64]int{},
		max: max, idle: idle, absolute: absolute, now: now,
	}
}

// create starts a session for the token id and returns the
// session id for the cookie: 32 random bytes, unpadded base64url.
func (s *sessions) create(tokenID int64) (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("making a session id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(raw)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perToken[tokenID] >= maxSessionsPerToken {
		for e := s.order.Front(); e != nil; e = e.Next() {
			if e.Value.(*session).tokenID == tokenID {
				s.remove(e)
				break
			}
		}
	}
	for s.order.Len() >= s.max {
		s.remove(s.order.Front())
	}
	ses := &session{key: sha256.Sum256([]byte(id)), tokenID: tokenID, created: now, lastSeen: now}
	s.byKey[ses.key] = s.order.PushBack(ses)
	s.perToken[tokenID]++
	return id, nil
}

// lookup returns the live session of id and marks it seen, or false for
// an unknown, idle or too old one (which is then forgotten). The table is
// keyed by the id's SHA-256: the lookup's timing says nothing about the id.
func (s *sessions) lookup(id string) (session, bool) {
	key := sha256.Sum256([]byte(id))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byKey[key]
	if !ok {
		return session{}, false
	}
	ses := e.Value.(*session)
	if now.Sub(ses.lastSeen) >= s.idle || now.Sub(ses.created) >= s.absolute {
		s.remove(e)
		return session{}, false
	}
	ses.lastSeen = now
	return *ses, true
}

// end forgets the session of id, if there is one.
func (s *sessions) end(id string) {
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.byKey[key]; ok {
		s.remove(e)
	}
}

// len is the number of sessions kept, expired ones included.
func (s *sessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order.Len()
}

func (s *sessions) remove(e *list.Element) {
	ses := s.order.Remove(e).(*session)
	delete(s.byKey, ses.key)
	if s.perToken[ses.tokenID]--; s.perToken[ses.tokenID] <= 0 {
		delete(s.perToken, ses.tokenID)
	}
}
