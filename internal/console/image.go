package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/osv"
	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// DetailStore is what the image, repository and vulnerability pages read:
// the store methods the API's image endpoints use, the audit history of a
// digest and the package index re-evaluation uses.
type DetailStore interface {
	Image(ctx context.Context, digest string) (store.Image, error)
	Tags(ctx context.Context, repository string) ([]store.Tag, error)
	Inventory(ctx context.Context, digest string) (*sbom.SBOM, error)
	Certification(ctx context.Context, digest string) (store.Certification, error)
	LatestDecision(ctx context.Context, digest string) (*policy.Decision, error)
	RollbackTarget(ctx context.Context, repository string) (string, error)
	ObjectHistory(ctx context.Context, object, actionPrefix string) ([]audit.Entry, error)
	DigestsFor(ctx context.Context, ecosystem, name string) ([]string, error)
}

// Advisories is the advisory database the console matches with: package
// lookups (match.Source) and records by id, an absent one an error
// wrapping vulndb.ErrNoAdvisory (*vulndb.DB is one).
type Advisories interface {
	match.Source
	Advisory(ctx context.Context, id string) (*osv.Record, error)
}

// notFoundError is a page whose object does not exist, or whose address
// is malformed: a 404 page that names it.
type notFoundError struct {
	What string // "image sha256:…", "repository …", "advisory …"
	Why  string
}

func (e *notFoundError) Error() string { return e.What + ": " + e.Why }

// digestPattern is the OCI digest grammar (algorithm ":" encoded), which
// an image page's address must follow; at most 256 characters.
var digestPattern = regexp.MustCompile(`^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{1,200}$`)

// imagePage is everything the console shows about one digest.
type imagePage struct {
	Image  store.Image
	Report *store.ImageReport // tags, findings counts, certification, owner; nil if absent
	// Certification is nil when the digest was never judged.
	Certification *store.Certification
	Decision      *policy.Decision // nil when none is stored
	History       []historyRow
	// RollbackTarget is the repository's newest certified digest, "" when
	// there is none.
	RollbackTarget string
	Vulns          vulnSection
	Signatures     signatureSection
	Labels         []string // key=value, sorted
}

// historyRow is one audited certification change.
type historyRow struct {
	Seq          int64
	Time         time.Time
	Actor        string
	Action       string // grant, deny, set, revoke
	Before       string // status, or "" when the digest was new
	After        string
	Reason       string
	BeforeReason string
}

func (c *console) image(r *http.Request) (any, error) {
	ctx := r.Context()
	digest := r.PathValue("digest")
	if !digestPattern.MatchString(digest) {
		return nil, &notFoundError{What: "image " + digest, Why: "not a digest (want algorithm:hex, such as sha256:…)"}
	}
	img, err := c.st.Image(ctx, digest)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &notFoundError{What: "image " + digest, Why: "the server has not seen this digest"}
	}
	if err != nil {
		return nil, err
	}
	p := imagePage{Image: img, Labels: sortedPairs(img.Labels)}
	reports, err := c.st.HygieneRepositories(ctx, img.Repository)
	if err != nil {
		return nil, err
	}
	for _, rep := range reports {
		for i := range rep.Images {
			if rep.Images[i].Digest == digest {
				p.Report = &rep.Images[i]
			}
		}
	}
	switch cert, err := c.st.Certification(ctx, digest); {
	case err == nil:
		p.Certification = &cert
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	switch d, err := c.st.LatestDecision(ctx, digest); {
	case err == nil:
		p.Decision = d
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	if p.History, err = c.history(ctx, digest); err != nil {
		return nil, err
	}
	if p.RollbackTarget, err = c.st.RollbackTarget(ctx, img.Repository); err != nil {
		return nil, err
	}
	if p.Vulns, err = c.vulnerabilities(ctx, digest); err != nil {
		return nil, err
	}
	if p.Signatures, err = c.signatures(ctx, digest); err != nil {
		return nil, err
	}
	return p, nil
}

// history is digest's certification changes from the audit log, oldest
// first.
func (c *console) history(ctx context.Context, digest string) ([]historyRow, error) {
	entries, err := c.st.ObjectHistory(ctx, digest, "certification.")
	if err != nil {
		return nil, err
	}
	out := make([]historyRow, 0, len(entries))
	for _, e := range entries {
		var before, after struct{ Status, Reason string }
		// The documents are the server's own; one that does not decode
		// shows as blank rather than failing the page.
		_ = json.Unmarshal(e.Before, &before)
		_ = json.Unmarshal(e.After, &after)
		action := e.Action[len("certification."):]
		out = append(out, historyRow{Seq: e.Seq, Time: e.Time, Actor: e.Actor, Action: action,
			Before: before.Status, BeforeReason: before.Reason, After: after.Status, Reason: after.Reason})
	}
	return out, nil
}

// vulnSection is the image page's vulnerability list: the stored
// inventory matched now against the advisory database, as
// GET /api/v1/images/{digest}/findings computes it.
type vulnSection struct {
	// Missing says why there is no list ("" when there is one).
	Missing  string
	Findings []findingRow
	Warnings []string
	Packages int
	// Database is the advisory database matched against (nil when the
	// console was given no AdvisoryStatus); Unknown says why its findings
	// cannot be trusted (empty or too old data), "" when they can.
	Database *policy.AdvisoryData
	Unknown  string
}

// findingRow is one finding as the console shows it.
type findingRow struct {
	ID        string
	Aliases   []string
	Summary   string
	Severity  string
	Status    string
	Package   string
	Installed string
	Fixed     string
	Ecosystem string
	// Advisories are the matched records, each with its page and its
	// reference.
	Advisories []advisoryLink
}

// advisoryLink is one advisory record: its id (the console's vulnerability
// page) and where it is published.
type advisoryLink struct {
	ID  string
	URL string // the record's ADVISORY reference, else its first web reference, else osv.dev
}

func (c *console) vulnerabilities(ctx context.Context, digest string) (vulnSection, error) {
	if c.opts.Advisories == nil {
		return vulnSection{Missing: "This server has no advisory database."}, nil
	}
	inv, err := c.st.Inventory(ctx, digest)
	if errors.Is(err, store.ErrNotFound) {
		return vulnSection{Missing: "No inventory is stored for this digest (not scanned yet, or not an image)."}, nil
	}
	if err != nil {
		return vulnSection{}, err
	}
	rec := &recordingSource{src: c.opts.Advisories, seen: map[string]*osv.Record{}}
	res, err := match.Match(ctx, rec, inv)
	if err != nil {
		return vulnSection{}, fmt.Errorf("matching the inventory of %s: %w", digest, err)
	}
	res.Sort()
	v := vulnSection{Warnings: res.Warnings, Packages: len(inv.Packages), Findings: make([]findingRow, 0, len(res.Findings))}
	if c.opts.AdvisoryStatus != nil {
		st, err := c.opts.AdvisoryStatus(ctx)
		if err != nil {
			return vulnSection{}, err
		}
		v.Database, v.Unknown = &st.Data, st.Unusable
	}
	for _, f := range res.Findings {
		v.Findings = append(v.Findings, rowOf(f, rec.seen))
	}
	return v, nil
}

func rowOf(f match.Finding, records map[string]*osv.Record) findingRow {
	row := findingRow{ID: f.ID, Aliases: f.Aliases, Summary: f.Summary, Severity: f.Severity.String(),
		Status: f.Status, Package: f.Package.Name, Installed: f.Package.Version, Fixed: f.FixedVersion,
		Ecosystem: f.Ecosystem}
	for _, id := range f.Advisories {
		row.Advisories = append(row.Advisories, advisoryLink{ID: id, URL: referenceURL(id, records[id])})
	}
	return row
}

// recordingSource is a match.Source that keeps every record it returned,
// by id, so that a finding's advisories can be linked to their references.
type recordingSource struct {
	src  match.Source
	seen map[string]*osv.Record
}

func (s *recordingSource) Lookup(ctx context.Context, ecosystem, name string) ([]*osv.Record, error) {
	recs, err := s.src.Lookup(ctx, ecosystem, name)
	for _, r := range recs {
		s.seen[r.ID] = r
	}
	return recs, err
}
