// Package notify tells people and systems outside Bulwark what happened:
// a certification revoked (with the repository's rollback target), a
// certification granted, a scan that failed for good, a new image.
//
// Publish turns one Event into one "notify" job per subscribed webhook in
// the store's job queue, so deliveries survive restarts and are spread
// over server replicas like any other job. A Dispatcher claims those jobs
// and POSTs them: a generic webhook gets the event as JSON, signed with
// HMAC-SHA256 over "timestamp.body" (Sign, Verify); a Slack-compatible
// webhook gets {"text", "blocks"}. A failed delivery is retried with the
// store's exponential backoff and its last error is kept on the job, which
// the API lists. docs/notifications.md is the receiver's guide.
//
// A webhook's full URL and HMAC secret are sealed together (Target,
// SealTarget) with the server's key; the store's url column holds only a
// redacted form (RedactURL), because a Slack URL is itself a credential.
package notify
