package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNoJob is returned by ClaimJob when no job is ready.
var ErrNoJob = errors.New("no job ready")

// DefaultMaxAttempts is how many times a job runs before it fails for good.
const DefaultMaxAttempts = 10

// MaxBackoff caps the wait before a failed job runs again.
const MaxBackoff = time.Hour

// Job states.
const (
	JobQueued  = "queued"
	JobRunning = "running"
	JobDone    = "done"
	JobFailed  = "failed"
)

// Job is a unit of background work: a scan, a re-evaluation, a poll.
type Job struct {
	ID        int64     `json:"id"`
	Kind      string    `json:"kind"`
	Payload   []byte    `json:"payload,omitempty"`
	State     string    `json:"state"`
	RunAfter  time.Time `json:"runAfter"`
	Attempts  int       `json:"attempts"` // runs started, this one included
	ClaimedBy string    `json:"claimedBy,omitempty"`
	ClaimedAt time.Time `json:"claimedAt"`
	Error     string    `json:"error,omitempty"` // the last failure
}

// EnqueueJob queues a job of kind to run at runAfter (now when zero) and
// returns its id.
func (s *Store) EnqueueJob(ctx context.Context, kind string, payload []byte, runAfter time.Time) (int64, error) {
	now := s.now()
	if runAfter.IsZero() {
		runAfter = now
	}
	var id int64
	err := s.db.QueryRowContext(ctx, s.d.q(`INSERT INTO jobs (kind, payload, state, run_after, created)
		VALUES (?, ?, 'queued', ?, ?) RETURNING id`), kind, payload, formatTime(runAfter), formatTime(now)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("enqueueing %s job: %w", kind, err)
	}
	return id, nil
}

// onceJobs is the predicate of the unique index over pending jobs: the
// kinds EnqueueJobOnce deduplicates.
const onceJobs = `state IN ('queued', 'running') AND kind IN ('scan', 'reevaluate')`

// slotJobs is the predicate of the unique index over every job, in any
// state, of the kinds EnqueueSlotJob queues: a slot key unique for all time.
const slotJobs = `kind = 'poll'`

// EnqueueJobOnce queues a scan or reevaluate job with payload unless one with
// exactly that kind and payload is queued or running, atomically (a unique
// index over the pending jobs of those kinds): two replicas, or a poll and
// a push notification, that find the same digest at the same moment queue
// one scan. It returns the id of the new or the pending job, and whether
// it queued one. Other kinds are refused (poll jobs: EnqueueSlotJob).
func (s *Store) EnqueueJobOnce(ctx context.Context, kind string, payload []byte, runAfter time.Time) (int64, bool, error) {
	if kind != "scan" && kind != "reevaluate" {
		return 0, false, fmt.Errorf("enqueueing %s job once: only scan and reevaluate jobs are deduplicated", kind)
	}
	now := s.now()
	if runAfter.IsZero() {
		runAfter = now
	}
	var id int64
	err := s.db.QueryRowContext(ctx, s.d.q(`INSERT INTO jobs (kind, payload, state, run_after, created)
		VALUES (?, ?, 'queued', ?, ?)
		ON CONFLICT (kind, payload) WHERE `+onceJobs+` DO NOTHING
		RETURNING id`), kind, payload, formatTime(runAfter), formatTime(now)).Scan(&id)
	if err == nil {
		return id, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("enqueueing %s job: %w", kind, err)
	}
	id, ok, err := s.PendingJob(ctx, kind, payload)
	if err != nil {
		return 0, false, err
	}
	if !ok { // it finished between the insert and the read: queue again
		return s.EnqueueJobOnce(ctx, kind, payload, runAfter)
	}
	return id, false, nil
}

// EnqueueSlotJob queues the poll job of a schedule slot (payload names the
// slot) to run now unless a job of that slot was ever queued, whatever
// became of it, atomically: a unique index over every poll job's payload
// is the slot's claim. Replicas ticking in the same slot queue one poll, and
// a replica that ticks late, after the slot's poll ran, queues nothing. It
// returns the new job's id and true, or 0 and false when the slot is taken.
// Other kinds are refused.
func (s *Store) EnqueueSlotJob(ctx context.Context, kind string, payload []byte) (int64, bool, error) {
	if kind != "poll" {
		return 0, false, fmt.Errorf("enqueueing %s job for a slot: only poll jobs have slots", kind)
	}
	if len(payload) == 0 {
		return 0, false, fmt.Errorf("enqueueing %s job for a slot: no slot named", kind)
	}
	now := formatTime(s.now())
	var id int64
	err := s.db.QueryRowContext(ctx, s.d.q(`INSERT INTO jobs (kind, payload, state, run_after, created)
		VALUES (?, ?, 'queued', ?, ?)
		ON CONFLICT (kind, payload) WHERE `+slotJobs+` DO NOTHING
		RETURNING id`), kind, payload, now, now).Scan(&id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("enqueueing %s job for slot %s: %w", kind, payload, err)
	}
	return id, true, nil
}

// ClaimJob atomically takes the queued job of one of kinds (any kind when
// none are given) whose run_after has come, earliest first, marks it running
// for worker and counts the attempt. It returns ErrNoJob when none is ready.
//
// The claim is one UPDATE whose WHERE re-checks state = 'queued' on the row
// the subquery picked: in SQLite writers are serialised, so two workers
// never get the same job. PostgreSQL adds FOR UPDATE SKIP LOCKED to the
// subquery so concurrent claimers skip each other's rows instead of waiting.
func (s *Store) ClaimJob(ctx context.Context, worker string, kinds ...string) (*Job, error) {
	return s.claim(ctx, worker, nil, kinds)
}

// ClaimJobWithPayload is ClaimJob of the queued job of kind with exactly
// payload: the replica that found an advisory change claims the
// re-evaluation of that change.
func (s *Store) ClaimJobWithPayload(ctx context.Context, worker, kind string, payload []byte) (*Job, error) {
	return s.claim(ctx, worker, payload, []string{kind})
}

func (s *Store) claim(ctx context.Context, worker string, payload []byte, kinds []string) (*Job, error) {
	now := formatTime(s.now())
	args := []any{worker, now, now}
	kindClause := ""
	if len(kinds) > 0 {
		kindClause = " AND kind IN (?" + strings.Repeat(", ?", len(kinds)-1) + ")"
		for _, k := range kinds {
			args = append(args, k)
		}
	}
	if payload != nil {
		kindClause += " AND payload = ?"
		args = append(args, payload)
	}
	query := `UPDATE jobs SET state = 'running', claimed_by = ?, claimed_at = ?, attempts = attempts + 1
		WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND run_after <= ?` + kindClause + `
			ORDER BY run_after, id LIMIT 1 ` + s.d.lockClaim + `)
		AND state = 'queued'
		RETURNING ` + jobColumns
	j, err := scanJob(s.db.QueryRowContext(ctx, s.d.q(query), args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoJob
	}
	if err != nil {
		return nil, fmt.Errorf("claiming a job for %s: %w", worker, err)
	}
	return j, nil
}

const jobColumns = `id, kind, payload, state, run_after, attempts, claimed_by, claimed_at, error`

func scanJob(r scanner) (*Job, error) {
	var (
		j                   Job
		runAfter, claimedAt string
	)
	if err := r.Scan(&j.ID, &j.Kind, &j.Payload, &j.State, &runAfter, &j.Attempts, &j.ClaimedBy, &claimedAt, &j.Error); err != nil {
		return nil, err
	}
	j.RunAfter, j.ClaimedAt = parseTime(runAfter), parseTime(claimedAt)
	return &j, nil
}

// Job returns the job with id, or ErrNotFound.
func (s *Store) Job(ctx context.Context, id int64) (*Job, error) {
	j, err := scanJob(s.db.QueryRowContext(ctx, s.d.q(`SELECT `+jobColumns+` FROM jobs WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("reading job %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading job %d: %w", id, err)
	}
	return j, nil
}

// CompleteJob marks the job j, as ClaimJob returned it, done. It fails
// when the claim is no longer j's: the job was requeued by RequeueStale and
// claimed again (attempts is the claim's fencing token).
func (s *Store) CompleteJob(ctx context.Context, j *Job) error {
	return s.finishJob(ctx, j, `UPDATE jobs SET state = 'done', error = ''
		WHERE id = ? AND state = 'running' AND attempts = ?`, j.ID, j.Attempts)
}

// FailJob records cause on the job j, as ClaimJob returned it, and queues
// it again after a backoff of 2^attempts seconds (capped at MaxBackoff), or
// marks it failed for good once it has run MaxAttempts times. Like
// CompleteJob it fails when the claim is no longer j's.
func (s *Store) FailJob(ctx context.Context, j *Job, cause error) error {
	maxAttempts := s.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = DefaultMaxAttempts
	}
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	if j.Attempts >= maxAttempts {
		return s.finishJob(ctx, j, `UPDATE jobs SET state = 'failed', error = ?
			WHERE id = ? AND state = 'running' AND attempts = ?`, msg, j.ID, j.Attempts)
	}
	runAfter := s.now().Add(Backoff(j.Attempts))
	return s.finishJob(ctx, j, `UPDATE jobs SET state = 'queued', error = ?, run_after = ?, claimed_by = '', claimed_at = ''
		WHERE id = ? AND state = 'running' AND attempts = ?`, msg, formatTime(runAfter), j.ID, j.Attempts)
}

// Backoff is the wait after a job's attempts-th failed run: 2^attempts
// seconds, at most MaxBackoff.
func Backoff(attempts int) time.Duration {
	if attempts < 0 {
		attempts = 0
	}
	if attempts >= 12 { // 2^12 s > 1 h; also keeps the shift from overflowing
		return MaxBackoff
	}
	return min(time.Duration(1<<attempts)*time.Second, MaxBackoff)
}

// ErrClaimLost is returned by CompleteJob and FailJob when the job is no
// longer running under the caller's claim.
var ErrClaimLost = errors.New("job no longer claimed by this worker")

// finishJob runs a state change that must find j still running under its
// claim.
func (s *Store) finishJob(ctx context.Context, j *Job, query string, args ...any) error {
	res, err := s.db.ExecContext(ctx, s.d.q(query), args...)
	if err != nil {
		return fmt.Errorf("updating job %d: %w", j.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("updating job %d: %w", j.ID, err)
	} else if n == 0 {
		return fmt.Errorf("updating job %d: %w", j.ID, ErrClaimLost)
	}
	return nil
}

// RequeueStale puts back in the queue the jobs claimed before the cutoff
// that are still running: their worker died (kill -9, lost node). Their
// attempt stays counted. It returns how many were requeued.
func (s *Store) RequeueStale(ctx context.Context, claimedBefore time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.d.q(`UPDATE jobs SET state = 'queued', claimed_by = '', claimed_at = '',
		error = 'worker lost' WHERE state = 'running' AND claimed_at < ?`), formatTime(claimedBefore))
	if err != nil {
		return 0, fmt.Errorf("requeueing stale jobs: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("requeueing stale jobs: %w", err)
	}
	return n, nil
}

// PendingJob returns the id of a queued or running job of kind with exactly
// payload, and whether there is one: a caller about to enqueue work that
// may already be queued (a digest found by a poll and by a push
// notification) checks it first. The check and a later EnqueueJob are not
// atomic; two callers racing may both enqueue, which idempotent jobs
// tolerate.
func (s *Store) PendingJob(ctx context.Context, kind string, payload []byte) (int64, bool, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT id FROM jobs
		WHERE kind = ? AND payload = ? AND state IN ('queued', 'running')
		ORDER BY id LIMIT 1`), kind, payload).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("looking for a pending %s job: %w", kind, err)
	}
	return id, true, nil
}

// Claimer claims jobs; *Store is one.
type Claimer interface {
	ClaimJob(ctx context.Context, worker string, kinds ...string) (*Job, error)
}

// RunJobs is the loop of a job worker: it claims a job of one of kinds as
// worker and hands it to run, waiting idle whenever none is ready, until
// ctx is done (then it returns nil). run records the job's outcome
// (CompleteJob, FailJob); an error from run, or a failed claim, ends the
// loop with that error.
func RunJobs(ctx context.Context, st Claimer, worker string, kinds []string, idle time.Duration, run func(context.Context, *Job) error) error {
	return RunJobsWoken(ctx, st, worker, kinds, idle, nil, run)
}

// RunJobsWoken is RunJobs that also stops waiting idle when wake
// receives: the job's producer says one is queued.
func RunJobsWoken(ctx context.Context, st Claimer, worker string, kinds []string, idle time.Duration, wake <-chan struct{}, run func(context.Context, *Job) error) error {
	for {
		j, err := st.ClaimJob(ctx, worker, kinds...)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrNoJob):
			select {
			case <-ctx.Done():
				return nil
			case <-wake:
			case <-time.After(idle):
			}
			continue
		case err != nil:
			return err
		}
		if err := run(ctx, j); err != nil {
			return err
		}
	}
}

// DoneJob returns the id of a done job of kind with exactly payload, and
// whether there is one: a change set another replica already re-evaluated.
func (s *Store) DoneJob(ctx context.Context, kind string, payload []byte) (int64, bool, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT id FROM jobs
		WHERE kind = ? AND payload = ? AND state = 'done' ORDER BY id LIMIT 1`), kind, payload).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("looking for a done %s job: %w", kind, err)
	}
	return id, true, nil
}

// DropJob deletes the job j, as ClaimJob returned it, when it turned out
// to duplicate work already done (another replica finished the same
// change set). Like CompleteJob it fails when the claim is no longer j's.
func (s *Store) DropJob(ctx context.Context, j *Job) error {
	return s.finishJob(ctx, j, `DELETE FROM jobs WHERE id = ? AND state = 'running' AND attempts = ?`, j.ID, j.Attempts)
}

// LatestJob returns the newest job of kind, in any state, whose payload
// contains each of parts in that order, or ErrNotFound: what a job left
// on record of the work it carried (a revocation's respond job names its
// event and rollback target). parts must not contain the LIKE wildcards
// % and _, nor a backslash; the match is a hint (SQLite's LIKE ignores
// ASCII case), which the caller checks on the decoded payload. It reads
// every job of kind: for rare lookups.
func (s *Store) LatestJob(ctx context.Context, kind string, parts ...string) (*Job, error) {
	for _, p := range parts {
		if strings.ContainsAny(p, `%_\`) {
			return nil, fmt.Errorf("looking up a %s job: %q contains a LIKE wildcard", kind, p)
		}
	}
	payload := "payload" // PostgreSQL: bytea LIKE bytea
	if s.d.name == sqliteDialect.name {
		payload = "CAST(payload AS TEXT)" // SQLite's LIKE matches no BLOB
	}
	j, err := scanJob(s.db.QueryRowContext(ctx, s.d.q(`SELECT `+jobColumns+` FROM jobs
		WHERE kind = ? AND `+payload+` LIKE ? ORDER BY id DESC LIMIT 1`), kind, "%"+strings.Join(parts, "%")+"%"))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("looking up a %s job: %w", kind, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up a %s job: %w", kind, err)
	}
	return j, nil
}
