package sign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Limits on what is read back from a signature or attestation manifest.
// cosign refuses more than 1000 layers too.
const (
	maxLayers       = 1000
	maxPayloadBytes = 64 << 20
)

// Options configure registry access.
type Options struct {
	// Insecure lets Verify parse references for plain-HTTP registries.
	// (localhost and 127.0.0.1 always may; SignImage and AttestImage take
	// an already parsed reference.)
	Insecure bool
	// Keychain resolves registry credentials; nil means the Docker config
	// and its credential helpers.
	Keychain authn.Keychain
	// Transport is the HTTP transport; nil means go-containerregistry's
	// default.
	Transport http.RoundTripper
}

func (o Options) remote(ctx context.Context) []remote.Option {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	ro := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
	if o.Transport != nil {
		ro = append(ro, remote.WithTransport(o.Transport))
	}
	return ro
}

// hashOf returns the sha256 hash a digest reference names; cosign's tag
// scheme only knows sha256.
func hashOf(ref name.Digest) (v1.Hash, error) {
	h, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		return v1.Hash{}, fmt.Errorf("parsing digest of %s: %w", ref, err)
	}
	if h.Algorithm != "sha256" {
		return v1.Hash{}, fmt.Errorf("digest of %s: algorithm %q is not supported (want sha256)", ref, h.Algorithm)
	}
	return h, nil
}

// SignatureTag returns the tag cosign stores the signatures of ref under:
// REPO:sha256-<hex>.sig.
func SignatureTag(ref name.Digest) (name.Tag, error) { return suffixTag(ref, signatureSuffix) }

// AttestationTag returns the tag cosign stores the attestations of ref
// under: REPO:sha256-<hex>.att.
func AttestationTag(ref name.Digest) (name.Tag, error) { return suffixTag(ref, attestationSuffix) }

func suffixTag(ref name.Digest, suffix string) (name.Tag, error) {
	h, err := hashOf(ref)
	if err != nil {
		return name.Tag{}, err
	}
	return ref.Context().Tag(h.Algorithm + "-" + h.Hex + "." + suffix), nil
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// emptySignatures is the base of a new signature or attestation manifest:
// an OCI manifest with an OCI config and no layers, as cosign starts from.
func emptySignatures() v1.Image {
	return mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
}

// storedLayer is one layer of a signature or attestation manifest.
type storedLayer struct {
	Digest      v1.Hash
	MediaType   types.MediaType
	Annotations map[string]string
	Payload     []byte
}

// appendLayer adds payload as a layer to the manifest at tag (creating it
// when absent) unless skip reports that an existing layer already says
// the same. Two writers appending at once can lose one layer: the registry
// API has no compare-and-swap on tags.
func appendLayer(tag name.Tag, payload []byte, mt types.MediaType, ann map[string]string, skip func(storedLayer) bool, ro []remote.Option) error {
	base, err := remote.Image(tag, ro...)
	switch {
	case isNotFound(err):
		base = emptySignatures()
	case err != nil:
		return fmt.Errorf("fetching %s: %w", tag, err)
	default:
		m, err := base.Manifest()
		if err != nil {
			return fmt.Errorf("fetching %s: %w", tag, err)
		}
		if len(m.Layers) >= maxLayers {
			return fmt.Errorf("appending to %s: it already has %d layers (at most %d)", tag, len(m.Layers), maxLayers)
		}
		if skip != nil {
			h, _, err := v1.SHA256(bytes.NewReader(payload))
			if err != nil {
				return err
			}
			for _, d := range m.Layers {
				if d.Digest != h || d.MediaType != mt {
					continue
				}
				if skip(storedLayer{Digest: d.Digest, MediaType: d.MediaType, Annotations: d.Annotations, Payload: payload}) {
					return nil
				}
			}
		}
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:       static.NewLayer(payload, mt),
		Annotations: ann,
	})
	if err != nil {
		return fmt.Errorf("appending to %s: %w", tag, err)
	}
	if err := remote.Write(tag, img, ro...); err != nil {
		return fmt.Errorf("writing %s: %w", tag, err)
	}
	return nil
}

// readLayers returns the layers of the manifest at tag whose media type is
// mt, with their payloads; no manifest at tag is no layers.
func readLayers(tag name.Tag, mt types.MediaType, ro []remote.Option) ([]storedLayer, error) {
	img, err := remote.Image(tag, ro...)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", tag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", tag, err)
	}
	if len(m.Layers) > maxLayers {
		return nil, fmt.Errorf("reading %s: %d layers, more than %d", tag, len(m.Layers), maxLayers)
	}
	var layers []storedLayer
	for _, d := range m.Layers {
		if d.MediaType != mt {
			continue
		}
		if d.Size > maxPayloadBytes {
			return nil, fmt.Errorf("reading %s: layer %s is %d bytes, more than %d", tag, d.Digest, d.Size, maxPayloadBytes)
		}
		b, err := readBlob(img, d.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading %s layer %s: %w", tag, d.Digest, err)
		}
		layers = append(layers, storedLayer{Digest: d.Digest, MediaType: d.MediaType, Annotations: d.Annotations, Payload: b})
	}
	return layers, nil
}

// readBlob reads one layer in full; go-containerregistry checks the bytes
// against the digest when the read reaches the end.
func readBlob(img v1.Image, h v1.Hash) ([]byte, error) {
	l, err := img.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxPayloadBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPayloadBytes {
		return nil, fmt.Errorf("more than %d bytes", maxPayloadBytes)
	}
	return b, nil
}
