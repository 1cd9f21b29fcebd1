package api

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/bulwark-sec/bulwark/internal/store"
)

// SignatureStore is what GET /api/v1/images/{digest}/signatures reads:
// the signatures, attestations and SBOMs the registry watcher found and
// attached to the image instead of scanning them.
type SignatureStore interface {
	Attachments(ctx context.Context, digest string) ([]store.Attachment, error)
}

// Signatures is the answer of GET /api/v1/images/{digest}/signatures.
type Signatures struct {
	Digest string `json:"digest"`
	// SignedBy are the keys (sign.KeyID: sha256 of the PKIX public key)
	// whose signature of this digest verified: the server verifies with
	// its own signing key.
	SignedBy []string `json:"signedBy"`
	// Identities are the subjects keyless signatures' certificates claim
	// (not checked against a Fulcio root).
	Identities []string `json:"identities"`
	// PredicateTypes are the attestations' types, verified or not.
	PredicateTypes []string `json:"predicateTypes"`
	// Attachments are every entry, by kind: signature, attestation, sbom,
	// artifact.
	Attachments []store.Attachment `json:"attachments"`
}

// signatures answers GET /api/v1/images/{digest}/signatures: 404 when
// neither the image nor anything attached to it is known.
func (h *Handler) signatures(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	digest := r.PathValue("digest")
	ss, ok := h.store.(SignatureStore)
	if !ok {
		return errorf(http.StatusNotImplemented, nil, "this store keeps no signatures")
	}
	items, err := ss.Attachments(ctx, digest)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		if _, err := h.store.Image(ctx, digest); errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, err, "image %s not found", digest)
		} else if err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, SignaturesOf(digest, items))
	return nil
}

// SignaturesOf summarises what is attached to digest: the keys whose
// signature verified, the identities and the attestations' types (the API
// answer and the console's image page).
func SignaturesOf(digest string, items []store.Attachment) Signatures {
	out := Signatures{Digest: digest, SignedBy: []string{}, Identities: []string{}, PredicateTypes: []string{}, Attachments: items}
	for _, a := range items {
		if a.Kind == "signature" && a.Verified && a.KeyID != "" {
			out.SignedBy = append(out.SignedBy, a.KeyID)
		}
		if a.Identity != "" {
			out.Identities = append(out.Identities, a.Identity)
		}
		if a.PredicateType != "" {
			out.PredicateTypes = append(out.PredicateTypes, a.PredicateType)
		}
	}
	for _, l := range []*[]string{&out.SignedBy, &out.Identities, &out.PredicateTypes} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
	}
	return out
}
