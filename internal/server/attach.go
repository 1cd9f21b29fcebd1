package server

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-sec/bulwark/internal/sign"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// maxManifestBytes bounds a manifest read to classify it.
const maxManifestBytes = 4 << 20

// artifactManifest reads the manifest at ref and returns its artifact
// kind and the digest of its subject, or kind "" for an image.
func artifactManifest(ref name.Digest, ropts []remote.Option) (kind, subject string, err error) {
	desc, err := remote.Get(ref, ropts...)
	if err != nil {
		return "", "", fmt.Errorf("fetching %s: %w", ref, err)
	}
	if len(desc.Manifest) > maxManifestBytes {
		return "", "", fmt.Errorf("fetching %s: manifest of %d bytes, more than %d", ref, len(desc.Manifest), maxManifestBytes)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return "", "", fmt.Errorf("decoding the manifest of %s: %w", ref, err)
	}
	kind, ok := sign.ArtifactKind(&m)
	if !ok {
		return "", "", nil
	}
	if m.Subject != nil {
		subject = m.Subject.Digest.String()
	}
	return kind, subject, nil
}

// attach records what repo's tag (an artifact at digest, about subject)
// holds, unless that digest is already recorded for the tag: one read of
// the artifact per change of the tag. A registry failure is logged and the
// tag is tried again next poll; only a store error is returned.
func (w *watcher) attach(ctx context.Context, repo name.Repository, tag, digest, subject, kind string, log *slog.Logger) error {
	known, err := w.store.AttachedArtifact(ctx, repo.Name(), tag)
	if err != nil || known == digest {
		return err
	}
	opts := sign.Options{Insecure: w.insecure, Keychain: w.keychain}
	got, err := sign.ReadAttached(ctx, repo.Digest(digest), subject, kind, w.keys, opts)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("reading an attached artifact failed", "repository", repo.Name(), "tag", tag, "err", err)
		}
		return nil
	}
	items := make([]store.Attachment, 0, len(got))
	for _, a := range got {
		items = append(items, store.Attachment{Artifact: a.Artifact, Layer: a.Layer, Subject: a.Subject, Kind: a.Kind,
			MediaType: a.MediaType, PredicateType: a.PredicateType, KeyID: a.KeyID, Identity: a.Identity, Verified: a.Verified})
	}
	if err := w.store.ReplaceAttachments(ctx, repo.Name(), tag, items); err != nil {
		return err
	}
	log.Info("artifact attached, not scanned", "repository", repo.Name(), "tag", tag, "kind", kind, "subject", subject, "entries", len(items))
	return nil
}

// publicKeys is the public half of the server's signing key, which the
// watcher verifies the signatures it finds with; none without a key.
func publicKeys(s sign.Signer) []crypto.PublicKey {
	if s == nil {
		return nil
	}
	return []crypto.PublicKey{s.PublicKey()}
}
