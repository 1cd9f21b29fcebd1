package notify

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Event types. A webhook subscribes to some of Types, or to all of them;
// EventTest goes only to the webhook it tests, whatever it subscribes to.
const (
	EventRevoked    = "certification.revoked"
	EventGranted    = "certification.granted"
	EventScanFailed = "scan.failed"
	EventImageNew   = "image.new"
	EventTest       = "webhook.test"
	EventDrift      = "runtime.drift"    // runtime.go
	EventResponse   = "runtime.response" // runtime.go
)

// Types are the event types a webhook may subscribe to.
var Types = []string{EventRevoked, EventGranted, EventScanFailed, EventImageNew, EventDrift,
	EventFuzzFindings, // fuzz.go
	EventDataAccess,   // governance.go
	EventResponse,
}

// KnownType reports whether typ is one of Types.
func KnownType(typ string) bool {
	for _, t := range Types {
		if t == typ {
			return true
		}
	}
	return false
}

// Event is what happened, as a generic webhook receives it (the whole
// request body). ID is the same for every webhook the event goes to and
// across retries; Data's shape depends on Type (Revocation, Grant,
// ScanFailure, NewImage, TestData).
type Event struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Time    time.Time       `json:"time"`
	Subject string          `json:"subject"` // what the event is about: repository@digest, an image reference
	Data    json.RawMessage `json:"data"`
}

// Revocation is the data of a certification.revoked event.
type Revocation struct {
	Digest     string    `json:"digest"`
	Repository string    `json:"repository"` // host/path, no tag
	Tags       []string  `json:"tags"`       // tags pointing at Digest
	Reason     string    `json:"reason"`
	Time       time.Time `json:"time"`
	// RollbackTarget is the newest digest of Repository that still passes
	// policy, "" when there is none; RollbackTags are its tags.
	RollbackTarget string   `json:"rollbackTarget,omitempty"`
	RollbackTags   []string `json:"rollbackTags,omitempty"`
	// Running are the workloads the server's running inventory knows
	// to run Digest when the event was published (runtime.go).
	Running []Running `json:"running,omitempty"`
}

// Grant is the data of a certification.granted event.
type Grant struct {
	Digest     string    `json:"digest"`
	Repository string    `json:"repository"`
	Tags       []string  `json:"tags"`
	Reason     string    `json:"reason,omitempty"`
	Time       time.Time `json:"time"`
}

// ScanFailure is the data of a scan.failed event: a scan job failed for
// good (it will not be retried).
type ScanFailure struct {
	Image    string    `json:"image"` // the reference the scan was asked for
	Job      int64     `json:"job"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error"`
	Time     time.Time `json:"time"`
}

// NewImage is the data of an image.new event: a digest seen for the first
// time.
type NewImage struct {
	Digest     string    `json:"digest"`
	Repository string    `json:"repository"`
	Tags       []string  `json:"tags"`
	Time       time.Time `json:"time"`
}

// TestData is the data of a webhook.test event.
type TestData struct {
	Webhook string `json:"webhook"`
	Message string `json:"message"`
}

// Revoked is the certification.revoked event of r. A zero r.Time is now.
func Revoked(r Revocation) Event {
	r.Time = orNow(r.Time)
	r.Tags = nonNil(r.Tags)
	return newEvent(EventRevoked, r.Time, r.Repository+"@"+r.Digest, r)
}

// Granted is the certification.granted event of g. A zero g.Time is now.
func Granted(g Grant) Event {
	g.Time = orNow(g.Time)
	g.Tags = nonNil(g.Tags)
	return newEvent(EventGranted, g.Time, g.Repository+"@"+g.Digest, g)
}

// ScanFailed is the scan.failed event of f. A zero f.Time is now.
func ScanFailed(f ScanFailure) Event {
	f.Time = orNow(f.Time)
	return newEvent(EventScanFailed, f.Time, f.Image, f)
}

// ImageNew is the image.new event of n. A zero n.Time is now.
func ImageNew(n NewImage) Event {
	n.Time = orNow(n.Time)
	n.Tags = nonNil(n.Tags)
	return newEvent(EventImageNew, n.Time, n.Repository+"@"+n.Digest, n)
}

// Test is the webhook.test event for the webhook called webhook.
func Test(webhook string) Event {
	return newEvent(EventTest, time.Now(), "webhook:"+webhook, TestData{
		Webhook: webhook,
		Message: "Test notification from Bulwark: this webhook is reachable.",
	})
}

func newEvent(typ string, at time.Time, subject string, data any) Event {
	b, _ := json.Marshal(data) // plain structs of strings and times always encode
	return Event{ID: NewID(), Type: typ, Time: at.UTC(), Subject: subject, Data: b}
}

// NewID is a random event id: "evt_" and 32 hex digits.
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return "evt_" + hex.EncodeToString(b[:])
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().UTC()
	}
	return t.UTC()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
