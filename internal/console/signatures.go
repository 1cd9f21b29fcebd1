package console

import (
	"context"

	"github.com/bulwark-sec/bulwark/internal/api"
)

// signatureSection is the image page's signatures and attestations: what
// GET /api/v1/images/{digest}/signatures answers.
type signatureSection struct {
	// Recorded is false when the store keeps no attachments at all.
	Recorded bool
	api.Signatures
}

// signatures reads what the registry watcher attached to digest, when the
// store records attachments (api.SignatureStore, found by type assertion).
func (c *console) signatures(ctx context.Context, digest string) (signatureSection, error) {
	ss, ok := c.st.(api.SignatureStore)
	if !ok {
		return signatureSection{}, nil
	}
	items, err := ss.Attachments(ctx, digest)
	if err != nil {
		return signatureSection{}, err
	}
	return signatureSection{Recorded: true, Signatures: api.SignaturesOf(digest, items)}, nil
}
