package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Lifecycle states of an application.
const (
	LifecycleActive     = "active"
	LifecycleDeprecated = "deprecated"
	// LifecycleEndOfLife applications are no longer scanned; their images
	// are listed for removal.
	LifecycleEndOfLife = "end-of-life"
)

// Application is a named workload with an owner, mapped to images by
// label or by repository pattern.
type Application struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	Team      string `json:"team,omitempty"`
	Contact   string `json:"contact,omitempty"`
	Lifecycle string `json:"lifecycle"` // LifecycleActive, LifecycleDeprecated or LifecycleEndOfLife
	// Repositories are glob patterns over repository names (see
	// MatchRepository).
	Repositories []string `json:"repositories"`
	// Labels map an image to the application when its config labels hold
	// every one of them (label=value).
	Labels  map[string]string `json:"labels"`
	Created time.Time         `json:"created"`
	Updated time.Time         `json:"updated"`
}

// applicationName is what an application may be called: it is a URL path
// segment of the API.
var applicationName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// Validate reports the first thing wrong with a, as a one-line error
// naming it.
func (a Application) Validate() error {
	if !applicationName.MatchString(a.Name) {
		return fmt.Errorf("application name %q: want 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit", a.Name)
	}
	switch a.Lifecycle {
	case LifecycleActive, LifecycleDeprecated, LifecycleEndOfLife:
	default:
		return fmt.Errorf("application %s: unknown lifecycle %q (want active, deprecated or end-of-life)", a.Name, a.Lifecycle)
	}
	for _, p := range a.Repositories {
		if err := validPattern(p); err != nil {
			return fmt.Errorf("application %s: %w", a.Name, err)
		}
	}
	for k := range a.Labels {
		if k == "" {
			return fmt.Errorf("application %s: empty label name", a.Name)
		}
	}
	if len(a.Repositories) == 0 && len(a.Labels) == 0 {
		return fmt.Errorf("application %s: needs repository patterns or labels to find its images", a.Name)
	}
	return nil
}

func validPattern(p string) error {
	if p == "" || strings.TrimSpace(p) != p {
		return fmt.Errorf("repository pattern %q is empty or has surrounding spaces", p)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "**" {
			continue
		}
		if strings.Contains(seg, "**") {
			return fmt.Errorf("repository pattern %q: ** must be a whole path segment", p)
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("repository pattern %q: %w", p, err)
		}
	}
	return nil
}

// MatchRepository reports whether the repository pattern matches repo.
// Patterns are path.Match globs matched segment by segment ('*' stays
// within one segment); a "**" segment matches any number of segments,
// including none. A pattern is matched against the full repository name
// the server stores ("registry.example.com/shop/api") and, when the first
// segment is a registry host (it holds a '.' or ':' or is "localhost"),
// also against the name without it ("shop/api"), so "shop/*" works on
// every registry.
func MatchRepository(pattern, repo string) bool {
	ps := strings.Split(pattern, "/")
	if matchSegments(ps, strings.Split(repo, "/")) {
		return true
	}
	host, rest, ok := strings.Cut(repo, "/")
	if ok && (strings.ContainsAny(host, ".:") || host == "localhost") {
		return matchSegments(ps, strings.Split(rest, "/"))
	}
	return false
}

func matchSegments(pattern, name []string) bool {
	for len(pattern) > 0 {
		if pattern[0] == "**" {
			rest := pattern[1:]
			for i := 0; i <= len(name); i++ {
				if matchSegments(rest, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pattern[0], name[0]); err != nil || !ok {
			return false
		}
		pattern, name = pattern[1:], name[1:]
	}
	return len(name) == 0
}

// matchesLabels reports whether labels hold every label of a (and a has
// some).
func (a Application) matchesLabels(labels map[string]string) bool {
	if len(a.Labels) == 0 {
		return false
	}
	for k, v := range a.Labels {
		got, ok := labels[k]
		if !ok || got != v {
			return false
		}
	}
	return true
}

// MatchesRepository reports whether one of a's patterns matches repo.
func (a Application) MatchesRepository(repo string) bool {
	for _, p := range a.Repositories {
		if MatchRepository(p, repo) {
			return true
		}
	}
	return false
}

// OwnerOf returns the application of apps that owns an image of
// repository with labels, or nil. Precedence: an application whose labels
// the image carries wins over one whose repository pattern matches (a
// label is set by the team that built the image, a pattern is a guess by
// location); among several of the same kind, the first in apps wins, and
// ListApplications orders them by name.
func OwnerOf(apps []Application, repository string, labels map[string]string) *Application {
	for i := range apps {
		if apps[i].matchesLabels(labels) {
			return &apps[i]
		}
	}
	return RepositoryOwner(apps, repository)
}

// RepositoryOwner is OwnerOf by repository pattern alone: what is known of
// a repository before its images are scanned (the watcher uses it to skip
// end-of-life repositories).
func RepositoryOwner(apps []Application, repository string) *Application {
	for i := range apps {
		if apps[i].MatchesRepository(repository) {
			return &apps[i]
		}
	}
	return nil
}

// PutApplication creates the application a.Name or replaces its owner,
// lifecycle, patterns and labels, and returns it as stored. a is
// validated first; an empty Lifecycle is LifecycleActive.
func (s *Store) PutApplication(ctx context.Context, a Application) (Application, error) {
	if a.Lifecycle == "" {
		a.Lifecycle = LifecycleActive
	}
	if err := a.Validate(); err != nil {
		return Application{}, err
	}
	repos, err := json.Marshal(nonNilSlice(a.Repositories))
	if err != nil {
		return Application{}, fmt.Errorf("storing application %s: %w", a.Name, err)
	}
	labels, err := json.Marshal(nonNilMap(a.Labels))
	if err != nil {
		return Application{}, fmt.Errorf("storing application %s: %w", a.Name, err)
	}
	now := formatTime(s.now())
	_, err = s.db.ExecContext(ctx, s.d.q(`INSERT INTO applications
		(name, team, contact, lifecycle, repositories, labels, created, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET team = excluded.team, contact = excluded.contact,
			lifecycle = excluded.lifecycle, repositories = excluded.repositories,
			labels = excluded.labels, updated = excluded.updated`),
		a.Name, a.Team, a.Contact, a.Lifecycle, string(repos), string(labels), now, now)
	if err != nil {
		return Application{}, fmt.Errorf("storing application %s: %w", a.Name, err)
	}
	return s.Application(ctx, a.Name)
}

const applicationColumns = `id, name, team, contact, lifecycle, repositories, labels, created, updated`

func scanApplication(r scanner) (Application, error) {
	var (
		a                 Application
		repos, labels     string
		created, modified string
	)
	if err := r.Scan(&a.ID, &a.Name, &a.Team, &a.Contact, &a.Lifecycle, &repos, &labels, &created, &modified); err != nil {
		return a, err
	}
	a.Created, a.Updated = parseTime(created), parseTime(modified)
	a.Repositories, a.Labels = []string{}, map[string]string{}
	if repos != "" {
		if err := json.Unmarshal([]byte(repos), &a.Repositories); err != nil {
			return a, fmt.Errorf("decoding the repositories of application %s: %w", a.Name, err)
		}
	}
	if labels != "" {
		if err := json.Unmarshal([]byte(labels), &a.Labels); err != nil {
			return a, fmt.Errorf("decoding the labels of application %s: %w", a.Name, err)
		}
	}
	return a, nil
}

// Application returns the application called name, or ErrNotFound.
func (s *Store) Application(ctx context.Context, name string) (Application, error) {
	a, err := scanApplication(s.db.QueryRowContext(ctx,
		s.d.q(`SELECT `+applicationColumns+` FROM applications WHERE name = ?`), name))
	if errors.Is(err, sql.ErrNoRows) {
		return Application{}, fmt.Errorf("reading application %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Application{}, fmt.Errorf("reading application %s: %w", name, err)
	}
	return a, nil
}

// ListApplications returns every application, by name.
func (s *Store) ListApplications(ctx context.Context) ([]Application, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+applicationColumns+` FROM applications`)
	if err != nil {
		return nil, fmt.Errorf("listing applications: %w", err)
	}
	defer rows.Close()
	var out []Application
	for rows.Next() {
		a, err := scanApplication(rows)
		if err != nil {
			return nil, fmt.Errorf("listing applications: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing applications: %w", err)
	}
	// Byte order, not the database's collation: OwnerOf's precedence must
	// be the same on every backend.
	slices.SortFunc(out, func(a, b Application) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// DeleteApplication removes the application called name, or returns
// ErrNotFound.
func (s *Store) DeleteApplication(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, s.d.q(`DELETE FROM applications WHERE name = ?`), name)
	if err != nil {
		return fmt.Errorf("deleting application %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("deleting application %s: %w", name, err)
	} else if n == 0 {
		return fmt.Errorf("deleting application %s: %w", name, ErrNotFound)
	}
	return nil
}

// ApplicationFor returns the application owning img (see OwnerOf for the
// precedence), and false when none does.
func (s *Store) ApplicationFor(ctx context.Context, img Image) (*Application, bool, error) {
	apps, err := s.ListApplications(ctx)
	if err != nil {
		return nil, false, err
	}
	a := OwnerOf(apps, img.Repository, img.Labels)
	return a, a != nil, nil
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}
