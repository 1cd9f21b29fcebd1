package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bulwark-sec/bulwark/internal/audit"
)

// MediaType is the media type of a checkpoint artifact's one layer: the
// checkpoint's JSON.
const MediaType types.MediaType = "application/vnd.bulwark.audit.checkpoint.v1+json"

// maxArtifact bounds the layer ReadOCI reads.
const maxArtifact = 4096

// OCI pushes each checkpoint as an OCI artifact (one layer of MediaType)
// to Repository, tagged Tag(keyID, seq). Tags are never moved: a
// repository with immutable tags (or a retention lock) keeps every
// checkpoint, and a checkpoint whose tag exists is not pushed again.
type OCI struct {
	Repository name.Repository
	Options    []remote.Option // credentials, transport
}

// Tag is the tag of the checkpoint of seq signed by keyID:
// "ckpt-KEYID-SEQ", seq in 20 digits so tags sort by seq.
func Tag(keyID string, seq int64) string { return fmt.Sprintf("ckpt-%s-%020d", keyID, seq) }

var tagRE = regexp.MustCompile(`^ckpt-([0-9a-f]{16})-([0-9]{20})$`)

// Name implements Sink.
func (o OCI) Name() string { return "oci " + o.Repository.String() }

// Put implements Sink.
func (o OCI) Put(ctx context.Context, c audit.Checkpoint) error {
	tag := o.Repository.Tag(Tag(c.KeyID, c.Seq))
	opts := append([]remote.Option{remote.WithContext(ctx)}, o.Options...)
	switch _, err := remote.Head(tag, opts...); {
	case err == nil:
		return nil // kept already (written before a restart)
	case !notFound(err):
		return fmt.Errorf("looking up %s: %w", tag, err)
	}
	body, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding checkpoint %d: %w", c.Seq, err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:       static.NewLayer(body, MediaType),
		Annotations: map[string]string{"org.opencontainers.image.title": "bulwark audit checkpoint " + strconv.FormatInt(c.Seq, 10)},
	})
	if err != nil {
		return fmt.Errorf("building the checkpoint artifact: %w", err)
	}
	if err := remote.Write(tag, img, opts...); err != nil {
		return fmt.Errorf("pushing %s: %w", tag, err)
	}
	return nil
}

// ReadOCI returns the newest checkpoint signed by keyID in repository
// (none when there is none). Its signature is not checked here.
func ReadOCI(ctx context.Context, repository name.Repository, keyID string, opts ...remote.Option) ([]audit.Checkpoint, error) {
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	tags, err := remote.List(repository, opts...)
	if err != nil && !notFound(err) {
		return nil, fmt.Errorf("listing the checkpoints in %s: %w", repository, err)
	}
	newest := ""
	for _, t := range tags {
		if m := tagRE.FindStringSubmatch(t); m != nil && m[1] == keyID && t > newest {
			newest = t
		}
	}
	if newest == "" {
		return nil, nil
	}
	ref := repository.Tag(newest)
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	if len(layers) != 1 {
		return nil, fmt.Errorf("reading %s: %w: %d layers, want 1", ref, audit.ErrMalformedCheckpoint, len(layers))
	}
	if mt, err := layers[0].MediaType(); err != nil || mt != MediaType {
		return nil, fmt.Errorf("reading %s: %w: layer media type %q, want %q", ref, audit.ErrMalformedCheckpoint, mt, MediaType)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, maxArtifact+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	if len(body) > maxArtifact {
		return nil, fmt.Errorf("reading %s: %w: over %d bytes", ref, audit.ErrMalformedCheckpoint, maxArtifact)
	}
	c, err := audit.DecodeCheckpoint(body)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	if Tag(c.KeyID, c.Seq) != newest {
		return nil, fmt.Errorf("reading %s: %w: it holds the checkpoint of entry %d by key %s", ref, audit.ErrMalformedCheckpoint, c.Seq, c.KeyID)
	}
	return []audit.Checkpoint{c}, nil
}

// notFound reports whether err is a registry's 404 (or NAME_UNKNOWN /
// MANIFEST_UNKNOWN).
func notFound(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range te.Errors {
		if c := string(d.Code); strings.HasSuffix(c, "_UNKNOWN") {
			return true
		}
	}
	return false
}
