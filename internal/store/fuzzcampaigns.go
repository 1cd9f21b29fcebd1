package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// fuzzSchema is the migration of fuzz campaigns: the API an application
// registers for them (one per application, gone with it) and the
// campaigns run against it, with their reports.
const fuzzSchema = `CREATE TABLE application_apis (
		application   TEXT PRIMARY KEY REFERENCES applications (name) ON DELETE CASCADE,
		openapi       TEXT NOT NULL,
		target        TEXT NOT NULL,
		allowed_hosts TEXT NOT NULL DEFAULT '[]',
		auth_header   TEXT NOT NULL DEFAULT '',
		auth_sealed   {blob},
		updated       TEXT NOT NULL
	);
	CREATE TABLE fuzz_campaigns (
		id           {id},
		application  TEXT NOT NULL,
		state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
		requested_by TEXT NOT NULL,
		options      TEXT NOT NULL DEFAULT '{}',
		findings     BIGINT NOT NULL DEFAULT 0,
		report       TEXT NOT NULL DEFAULT '',
		error        TEXT NOT NULL DEFAULT '',
		created      TEXT NOT NULL,
		started      TEXT NOT NULL DEFAULT '',
		finished     TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX fuzz_campaigns_application ON fuzz_campaigns (application, id);`

// fuzzActiveSchema is the migration that allows one queued or running
// campaign per application: a second is refused atomically, on both
// backends, rather than queued behind the first against the same API.
const fuzzActiveSchema = `CREATE UNIQUE INDEX fuzz_campaigns_active ON fuzz_campaigns (application)
	WHERE state IN ('queued', 'running');`

// ErrCampaignActive: the application has a campaign queued or running.
var ErrCampaignActive = errors.New("a fuzz campaign of the application is queued or running")

// APIRegistration is the HTTP API an application registers for fuzz
// campaigns: where its OpenAPI document is, the base URL requests go to,
// and the only hosts a campaign may reach. AuthSealed is the credential
// header's value, sealed by the caller with the server's key: the store
// never sees it in the clear.
type APIRegistration struct {
	Application  string    `json:"application"`
	OpenAPI      string    `json:"openapi"`
	Target       string    `json:"target"`
	AllowedHosts []string  `json:"allowedHosts"`
	AuthHeader   string    `json:"authHeader,omitempty"`
	AuthSealed   []byte    `json:"-"`
	Updated      time.Time `json:"updated"`
}

// PutAPIRegistration stores r for its application (which must exist),
// replacing an earlier one.
func (s *Store) PutAPIRegistration(ctx context.Context, r APIRegistration) (APIRegistration, error) {
	hosts, err := json.Marshal(nonNilSlice(r.AllowedHosts))
	if err != nil {
		return APIRegistration{}, fmt.Errorf("storing the API of application %q: %w", r.Application, err)
	}
	r.Updated = s.now()
	_, err = s.db.ExecContext(ctx, s.d.q(`INSERT INTO application_apis
		(application, openapi, target, allowed_hosts, auth_header, auth_sealed, updated)
		SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM applications WHERE name = ?)
		ON CONFLICT (application) DO UPDATE SET openapi = excluded.openapi, target = excluded.target,
			allowed_hosts = excluded.allowed_hosts, auth_header = excluded.auth_header,
			auth_sealed = excluded.auth_sealed, updated = excluded.updated`),
		r.Application, r.OpenAPI, r.Target, string(hosts), r.AuthHeader, r.AuthSealed, formatTime(r.Updated), r.Application)
	if err != nil {
		return APIRegistration{}, fmt.Errorf("storing the API of application %q: %w", r.Application, err)
	}
	return s.APIRegistration(ctx, r.Application)
}

// APIRegistration returns the API application registered; ErrNotFound
// when none.
func (s *Store) APIRegistration(ctx context.Context, application string) (APIRegistration, error) {
	r := APIRegistration{Application: application}
	var hosts, updated string
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT openapi, target, allowed_hosts, auth_header, auth_sealed, updated
		FROM application_apis WHERE application = ?`), application).
		Scan(&r.OpenAPI, &r.Target, &hosts, &r.AuthHeader, &r.AuthSealed, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("API of application %q: %w", application, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("reading the API of application %q: %w", application, err)
	}
	r.Updated = parseTime(updated)
	if err := json.Unmarshal([]byte(hosts), &r.AllowedHosts); err != nil {
		return r, fmt.Errorf("reading the API of application %q: allowed hosts: %w", application, err)
	}
	return r, nil
}

// DeleteAPIRegistration removes application's API; ErrNotFound when none.
func (s *Store) DeleteAPIRegistration(ctx context.Context, application string) error {
	res, err := s.db.ExecContext(ctx, s.d.q(`DELETE FROM application_apis WHERE application = ?`), application)
	if err != nil {
		return fmt.Errorf("deleting the API of application %q: %w", application, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("API of application %q: %w", application, ErrNotFound)
	}
	return nil
}

// Fuzz campaign states.
const (
	CampaignQueued  = "queued"
	CampaignRunning = "running"
	CampaignDone    = "done"
	CampaignFailed  = "failed"
)

// FuzzCampaign is one fuzz campaign against an application's registered
// API. Options and Report are JSON (the campaign package's types);
// Findings counts the report's findings.
type FuzzCampaign struct {
	ID          int64           `json:"id"`
	Application string          `json:"application"`
	State       string          `json:"state"`
	RequestedBy string          `json:"requestedBy"`
	Options     json.RawMessage `json:"options"`
	Findings    int             `json:"findings"`
	Report      json.RawMessage `json:"report,omitempty"`
	Error       string          `json:"error,omitempty"`
	Created     time.Time       `json:"created"`
	Started     *time.Time      `json:"started,omitempty"`
	Finished    *time.Time      `json:"finished,omitempty"`
}

// CreateFuzzCampaign stores a queued campaign and returns it with its id;
// ErrCampaignActive when the application has one queued or running.
func (s *Store) CreateFuzzCampaign(ctx context.Context, application, requestedBy string, options json.RawMessage) (FuzzCampaign, error) {
	c := FuzzCampaign{Application: application, State: CampaignQueued, RequestedBy: requestedBy, Options: options, Created: s.now()}
	err := s.db.QueryRowContext(ctx, s.d.q(`INSERT INTO fuzz_campaigns (application, state, requested_by, options, created)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (application) WHERE state IN ('queued', 'running') DO NOTHING
		RETURNING id`), application, c.State, requestedBy, string(options), formatTime(c.Created)).Scan(&c.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("storing a fuzz campaign of %q: %w", application, ErrCampaignActive)
	}
	if err != nil {
		return c, fmt.Errorf("storing a fuzz campaign of %q: %w", application, err)
	}
	return c, nil
}

const campaignColumns = `id, application, state, requested_by, options, findings, report, error, created, started, finished`

func scanCampaign(row interface{ Scan(...any) error }) (FuzzCampaign, error) {
	var c FuzzCampaign
	var options, report, created, started, finished string
	if err := row.Scan(&c.ID, &c.Application, &c.State, &c.RequestedBy, &options, &c.Findings, &report, &c.Error,
		&created, &started, &finished); err != nil {
		return c, err
	}
	c.Options = json.RawMessage(options)
	if report != "" {
		c.Report = json.RawMessage(report)
	}
	c.Created = parseTime(created)
	for _, t := range []struct {
		s   string
		dst **time.Time
	}{{started, &c.Started}, {finished, &c.Finished}} {
		if t.s != "" {
			v := parseTime(t.s)
			*t.dst = &v
		}
	}
	return c, nil
}

// FuzzCampaign returns campaign id; ErrNotFound when there is none (of
// application, when application is not "").
func (s *Store) FuzzCampaign(ctx context.Context, application string, id int64) (FuzzCampaign, error) {
	c, err := scanCampaign(s.db.QueryRowContext(ctx, s.d.q(`SELECT `+campaignColumns+` FROM fuzz_campaigns
		WHERE id = ? AND (? = '' OR application = ?)`), id, application, application))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("fuzz campaign %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("reading fuzz campaign %d: %w", id, err)
	}
	return c, nil
}

// FuzzCampaigns lists application's campaigns, newest first, without
// their reports, at most limit.
func (s *Store) FuzzCampaigns(ctx context.Context, application string, limit int) ([]FuzzCampaign, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT id, application, state, requested_by, options, findings, '', error,
		created, started, finished FROM fuzz_campaigns WHERE application = ? ORDER BY id DESC LIMIT ?`), application, max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("listing the fuzz campaigns of %q: %w", application, err)
	}
	defer rows.Close()
	out := []FuzzCampaign{}
	for rows.Next() {
		c, err := scanCampaign(rows)
		if err != nil {
			return nil, fmt.Errorf("listing the fuzz campaigns of %q: %w", application, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// StartFuzzCampaign marks campaign id running.
func (s *Store) StartFuzzCampaign(ctx context.Context, id int64) error {
	_, err := s.db.ExecContext(ctx, s.d.q(`UPDATE fuzz_campaigns SET state = ?, started = ? WHERE id = ?`),
		CampaignRunning, formatTime(s.now()), id)
	if err != nil {
		return fmt.Errorf("starting fuzz campaign %d: %w", id, err)
	}
	return nil
}

// FinishFuzzCampaign records campaign id's outcome: done with its report
// and number of findings, or failed with errMsg.
func (s *Store) FinishFuzzCampaign(ctx context.Context, id int64, state string, findings int, report json.RawMessage, errMsg string) error {
	if state != CampaignDone && state != CampaignFailed {
		return fmt.Errorf("finishing fuzz campaign %d: state %q is not an end", id, state)
	}
	_, err := s.db.ExecContext(ctx, s.d.q(`UPDATE fuzz_campaigns SET state = ?, findings = ?, report = ?, error = ?, finished = ?
		WHERE id = ?`), state, findings, string(report), errMsg, formatTime(s.now()), id)
	if err != nil {
		return fmt.Errorf("finishing fuzz campaign %d: %w", id, err)
	}
	return nil
}
