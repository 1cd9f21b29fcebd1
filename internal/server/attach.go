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
	return classifyManifest(ref, desc)
}

// classifyManifest is artifactManifest of the manifest desc fetched for
// ref: an index is an image (kind "").
func classifyManifest(ref name.Reference, desc *remote.Descriptor) (kind, subject string, err error) {
	if desc.MediaType.IsIndex() {
		return "", "", nil
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

// artifactJob reports whether the reference a scan job names (queued by a
// push notification or POST /api/v1/scans) is a signature, attestation,
// SBOM or other artifact rather than an image, recognised as the watcher
// recognises them: by cosign's tag scheme, else by the manifest
// (sign.ArtifactTag, sign.ArtifactKind). One named by a tag is attached
// under that tag; one named by digest alone is left to the watcher, which
// finds its tag. Either way the job is done, not scanned: a scan of an
// artifact fails and is retried up to the attempt limit. A registry error
// is returned (the job fails and is retried, as a scan's would).
func (w *watcher) artifactJob(ctx context.Context, ref name.Reference, log *slog.Logger) (bool, error) {
	var nopts []name.Option
	if w.insecure {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(ref.String(), nopts...)
	if err != nil {
		return false, fmt.Errorf("parsing reference %q: %w", ref, err)
	}
	ropts := w.remoteOptions(ctx)
	tag, byTag := ref.(name.Tag)
	subject, kind, ok := "", "", false
	if byTag {
		subject, kind, ok = sign.ArtifactTag(tag.TagStr())
	}
	desc, err := remote.Get(ref, ropts...)
	if err != nil {
		return false, fmt.Errorf("fetching %s: %w", ref, err)
	}
	if !ok {
		if kind, subject, err = classifyManifest(ref, desc); err != nil {
			return false, err
		}
		if kind == "" {
			return false, nil
		}
	}
	digest := desc.Digest.String()
	if !byTag {
		log.Info("not an image: not scanned, left to the watcher to attach", "image", ref.Name(), "kind", kind, "subject", subject)
		return true, nil
	}
	return true, w.attach(ctx, ref.Context(), tag.TagStr(), digest, subject, kind, log)
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
	opts := sign.Options{Insecure: w.insecure, Keychain: w.keychain, Transport: w.transport}
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
