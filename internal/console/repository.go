package console

import (
	"net/http"

	"github.com/bulwark-sec/bulwark/internal/store"
)

// repositoryPage is one repository: its images (each linking to its
// page), its tags and the digest a revoked image rolls back to.
type repositoryPage struct {
	Report store.RepositoryReport
	Tags   []store.Tag
	// RollbackTarget is the newest certified digest, "" when none.
	RollbackTarget string
}

func (c *console) repository(r *http.Request) (any, error) {
	ctx := r.Context()
	repo := r.PathValue("path")
	if repo == "" {
		return nil, &notFoundError{What: "repository", Why: "no repository named (want /repositories/host/path)"}
	}
	reports, err := c.st.HygieneRepositories(ctx, repo)
	if err != nil {
		return nil, err
	}
	if len(reports) == 0 {
		return nil, &notFoundError{What: "repository " + repo, Why: "the server has no image of this repository"}
	}
	p := repositoryPage{Report: reports[0]}
	if p.Tags, err = c.st.Tags(ctx, repo); err != nil {
		return nil, err
	}
	if p.RollbackTarget, err = c.st.RollbackTarget(ctx, repo); err != nil {
		return nil, err
	}
	return p, nil
}
