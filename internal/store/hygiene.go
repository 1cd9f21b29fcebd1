package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Owner is the application an image belongs to, as the hygiene listings
// show it.
type Owner struct {
	Application string `json:"application"`
	Team        string `json:"team,omitempty"`
	Contact     string `json:"contact,omitempty"`
	Lifecycle   string `json:"lifecycle"`
}

func ownerOf(a *Application) *Owner {
	if a == nil {
		return nil
	}
	return &Owner{Application: a.Name, Team: a.Team, Contact: a.Contact, Lifecycle: a.Lifecycle}
}

// TagRef is a tag pointing at an image, with when it last moved there
// (the last push of that tag).
type TagRef struct {
	Repository string    `json:"repository"`
	Tag        string    `json:"tag"`
	Pushed     time.Time `json:"pushed"`
}

// ImageReport is what hygiene knows of one digest: its age, pushes, last
// scan, findings, certification and owner.
type ImageReport struct {
	Digest     string   `json:"digest"`
	Repository string   `json:"repository"`
	Tags       []TagRef `json:"tags"`
	// Created is the image config's created time.
	Created time.Time `json:"created"`
	// AgeDays is whole days since Created, or since FirstSeen when the
	// config has no meaningful created time (zero, or the Unix epoch that
	// reproducible builds write).
	AgeDays int `json:"ageDays"`
	// LastPush is the newest Pushed of Tags; zero when untagged.
	LastPush    time.Time      `json:"lastPush"`
	FirstSeen   time.Time      `json:"firstSeen"`
	LastSeen    time.Time      `json:"lastSeen"`
	LastScanned time.Time      `json:"lastScanned"`
	Findings    map[string]int `json:"findings"`
	// Certification is Certified, Revoked, NotCertified, or "" when the
	// image was never judged.
	Certification        string    `json:"certification"`
	CertificationReason  string    `json:"certificationReason,omitempty"`
	CertificationUpdated time.Time `json:"certificationUpdated"`
	Owner                *Owner    `json:"owner"`
}

// RepositoryReport is a repository's images, newest created first.
type RepositoryReport struct {
	Repository string `json:"repository"`
	// Owner is the application whose repository pattern matches; an image
	// may still belong to another by its labels (ImageReport.Owner).
	Owner    *Owner        `json:"owner"`
	LastPush time.Time     `json:"lastPush"`
	Images   []ImageReport `json:"images"`
}

// ageTime is the SQL expression of an image's age reference: the config's
// created time, or first_seen when created is missing or at the Unix
// epoch (reproducible builds). Times are stored as fixed-layout UTC text,
// so text order is time order on both backends.
const ageTime = `(CASE WHEN i.created > '1970-01-02' THEN i.created ELSE i.first_seen END)`

// imageReports runs the one query behind every hygiene listing: images
// with their certification and tags (one row per tag), filtered by where
// (SQL over i, c and t, with ? placeholders). Rows of one digest are
// adjacent (ordered by digest); the result is sorted by repository, then
// newest created first, in Go so that both backends agree whatever their
// collation. Labels are read from the stored configs only when some
// application maps by label.
func (s *Store) imageReports(ctx context.Context, apps []Application, where string, args ...any) ([]ImageReport, error) {
	configCol := "NULL"
	if slices.ContainsFunc(apps, func(a Application) bool { return len(a.Labels) > 0 }) {
		configCol = "i.config"
	}
	q := `SELECT i.digest, i.repository, i.created, i.first_seen, i.last_seen, i.last_scanned, i.findings,
			` + configCol + `, ` + ageTime + `,
			COALESCE(c.status, ''), COALESCE(c.reason, ''), COALESCE(c.updated, ''),
			COALESCE(t.repository, ''), COALESCE(t.tag, ''), COALESCE(t.updated, '')
		FROM images i
		LEFT JOIN certifications c ON c.digest = i.digest
		LEFT JOIN tags t ON t.digest = i.digest`
	if where != "" {
		q += ` WHERE ` + where
	}
	q += ` ORDER BY i.digest`
	rows, err := s.db.QueryContext(ctx, s.d.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("listing image hygiene: %w", err)
	}
	defer rows.Close()
	now := s.now()
	var out []ImageReport
	for rows.Next() {
		var (
			r                                  ImageReport
			created, first, last, scanned, age string
			findings, certUpdated              string
			config                             []byte
			tagRepo, tag, pushed               string
		)
		if err := rows.Scan(&r.Digest, &r.Repository, &created, &first, &last, &scanned, &findings,
			&config, &age, &r.Certification, &r.CertificationReason, &certUpdated,
			&tagRepo, &tag, &pushed); err != nil {
			return nil, fmt.Errorf("listing image hygiene: %w", err)
		}
		if n := len(out); n > 0 && out[n-1].Digest == r.Digest {
			out[n-1].addTag(tagRepo, tag, pushed)
			continue
		}
		r.Created, r.FirstSeen, r.LastSeen = parseTime(created), parseTime(first), parseTime(last)
		r.LastScanned, r.CertificationUpdated = parseTime(scanned), parseTime(certUpdated)
		if t := parseTime(age); !t.IsZero() && now.After(t) {
			r.AgeDays = int(now.Sub(t) / (24 * time.Hour))
		}
		r.Findings = map[string]int{}
		if findings != "" {
			if err := json.Unmarshal([]byte(findings), &r.Findings); err != nil {
				return nil, fmt.Errorf("decoding findings of %s: %w", r.Digest, err)
			}
		}
		r.Owner = ownerOf(OwnerOf(apps, r.Repository, configLabels(config)))
		r.Tags = []TagRef{}
		r.addTag(tagRepo, tag, pushed)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing image hygiene: %w", err)
	}
	for i := range out {
		slices.SortFunc(out[i].Tags, func(a, b TagRef) int {
			return cmp.Or(strings.Compare(a.Repository, b.Repository), strings.Compare(a.Tag, b.Tag))
		})
	}
	slices.SortFunc(out, func(a, b ImageReport) int {
		return cmp.Or(strings.Compare(a.Repository, b.Repository), b.Created.Compare(a.Created),
			strings.Compare(a.Digest, b.Digest))
	})
	return out, nil
}

func (r *ImageReport) addTag(repository, tag, pushed string) {
	if tag == "" {
		return
	}
	t := TagRef{Repository: repository, Tag: tag, Pushed: parseTime(pushed)}
	r.Tags = append(r.Tags, t)
	if t.Pushed.After(r.LastPush) {
		r.LastPush = t.Pushed
	}
}

// configLabels are the labels of an image config JSON; nil when there is
// none or it does not parse.
func configLabels(config []byte) map[string]string {
	if len(config) == 0 {
		return nil
	}
	var cfg struct {
		Config struct {
			Labels map[string]string `json:"Labels"`
		} `json:"config"`
	}
	if json.Unmarshal(config, &cfg) != nil {
		return nil
	}
	return cfg.Config.Labels
}

// HygieneRepositories returns every repository with its images (or only
// repository's, when it is not ""), by repository name.
func (s *Store) HygieneRepositories(ctx context.Context, repository string) ([]RepositoryReport, error) {
	apps, err := s.ListApplications(ctx)
	if err != nil {
		return nil, err
	}
	var imgs []ImageReport
	if repository == "" {
		imgs, err = s.imageReports(ctx, apps, "")
	} else {
		imgs, err = s.imageReports(ctx, apps, "i.repository = ?", repository)
	}
	if err != nil {
		return nil, err
	}
	out := []RepositoryReport{}
	for _, img := range imgs {
		n := len(out)
		if n == 0 || out[n-1].Repository != img.Repository {
			out = append(out, RepositoryReport{
				Repository: img.Repository,
				Owner:      ownerOf(RepositoryOwner(apps, img.Repository)),
			})
			n++
		}
		r := &out[n-1]
		r.Images = append(r.Images, img)
		if img.LastPush.After(r.LastPush) {
			r.LastPush = img.LastPush
		}
	}
	return out, nil
}

// DefaultStaleAfter is the age past which StaleImages lists an image.
const DefaultStaleAfter = 180 * 24 * time.Hour

// StaleImages returns the images older than olderThan (by config created
// time, or first seen when the config has none; see ImageReport.AgeDays),
// tagged or not.
func (s *Store) StaleImages(ctx context.Context, olderThan time.Duration) ([]ImageReport, error) {
	apps, err := s.ListApplications(ctx)
	if err != nil {
		return nil, err
	}
	return nonNilReports(s.imageReports(ctx, apps, ageTime+` < ?`, formatTime(s.now().Add(-olderThan))))
}

// UntaggedImages returns the images no tag points at.
func (s *Store) UntaggedImages(ctx context.Context) ([]ImageReport, error) {
	apps, err := s.ListApplications(ctx)
	if err != nil {
		return nil, err
	}
	return nonNilReports(s.imageReports(ctx, apps, `t.digest IS NULL`))
}

// RemovalImages returns the images whose owning application is end of
// life: they are no longer scanned and may be deleted from the registry.
func (s *Store) RemovalImages(ctx context.Context) ([]ImageReport, error) {
	apps, err := s.ListApplications(ctx)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(apps, func(a Application) bool { return a.Lifecycle == LifecycleEndOfLife }) {
		return []ImageReport{}, nil
	}
	imgs, err := s.imageReports(ctx, apps, "")
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(imgs, func(r ImageReport) bool {
		return r.Owner == nil || r.Owner.Lifecycle != LifecycleEndOfLife
	}), nil
}

func nonNilReports(r []ImageReport, err error) ([]ImageReport, error) {
	if r == nil && err == nil {
		r = []ImageReport{}
	}
	return r, err
}

// RevokedImage is a revoked certification with the repository's rollback
// target.
type RevokedImage struct {
	Digest     string    `json:"digest"`
	Repository string    `json:"repository"`
	Reason     string    `json:"reason"`
	Revoked    time.Time `json:"revoked"`
	Created    time.Time `json:"created"`
	// RollbackTarget is the newest (by config created time) digest of the
	// same repository that is still certified, as reeval's RollbackTarget
	// computes it; "" when there is none.
	RollbackTarget        string    `json:"rollbackTarget"`
	RollbackTargetCreated time.Time `json:"rollbackTargetCreated"`
	Owner                 *Owner    `json:"owner"`
}

// RevokedImages returns every revoked image with its rollback target,
// newest revocation first, in one query.
func (s *Store) RevokedImages(ctx context.Context) ([]RevokedImage, error) {
	apps, err := s.ListApplications(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT i.digest, i.repository, i.created, i.config,
			c.reason, c.updated, COALESCE(rb.digest, ''), COALESCE(rb.created, '')
		FROM certifications c
		JOIN images i ON i.digest = c.digest
		LEFT JOIN images rb ON rb.digest = (
			SELECT i2.digest FROM images i2
			JOIN certifications c2 ON c2.digest = i2.digest
			WHERE i2.repository = i.repository AND c2.status = ?
			ORDER BY i2.created DESC, i2.digest LIMIT 1)
		WHERE c.status = ?`), Certified, Revoked)
	if err != nil {
		return nil, fmt.Errorf("listing revocations: %w", err)
	}
	defer rows.Close()
	out := []RevokedImage{}
	for rows.Next() {
		var (
			r                          RevokedImage
			created, revoked, rbCreate string
			config                     []byte
		)
		if err := rows.Scan(&r.Digest, &r.Repository, &created, &config, &r.Reason, &revoked,
			&r.RollbackTarget, &rbCreate); err != nil {
			return nil, fmt.Errorf("listing revocations: %w", err)
		}
		r.Created, r.Revoked, r.RollbackTargetCreated = parseTime(created), parseTime(revoked), parseTime(rbCreate)
		r.Owner = ownerOf(OwnerOf(apps, r.Repository, configLabels(config)))
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing revocations: %w", err)
	}
	slices.SortFunc(out, func(a, b RevokedImage) int {
		return cmp.Or(b.Revoked.Compare(a.Revoked), strings.Compare(a.Digest, b.Digest))
	})
	return out, nil
}
