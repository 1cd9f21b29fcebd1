package image

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// RemoteOptions returns the go-containerregistry options Bulwark uses for
// every registry call: credentials from the keychain, the platform, ctx.
func RemoteOptions(ctx context.Context, opts Options) ([]remote.Option, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	p, err := opts.platform()
	if err != nil {
		return nil, err
	}
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(opts.Keychain),
		remote.WithPlatform(*p),
	}
	if opts.Transport != nil {
		ropts = append(ropts, remote.WithTransport(opts.Transport))
	}
	return ropts, nil
}

// ParseReference parses a registry reference, allowing plain HTTP when
// insecure is set (localhost and private addresses always may).
func ParseReference(ref string, insecure bool) (name.Reference, error) {
	var nopts []name.Option
	if insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("parsing reference %q: %w", ref, err)
	}
	return r, nil
}

func openRemote(ctx context.Context, ref string, opts Options) (*Image, error) {
	r, err := ParseReference(ref, opts.Insecure)
	if err != nil {
		return nil, err
	}
	ropts, err := RemoteOptions(ctx, opts)
	if err != nil {
		return nil, err
	}
	rimg, err := remote.Image(r, ropts...)
	if err != nil {
		return nil, fmt.Errorf("fetching manifest: %w", err)
	}
	digest, err := rimg.Digest()
	if err != nil {
		return nil, fmt.Errorf("computing digest: %w", err)
	}
	cfg, err := rimg.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("fetching config: %w", err)
	}
	cid, err := rimg.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("fetching config: %w", err)
	}
	rlayers, err := rimg.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(rlayers) {
		return nil, fmt.Errorf("config lists %d layers (diff_ids), the manifest %d", len(cfg.RootFS.DiffIDs), len(rlayers))
	}
	img := &Image{
		Source: sbom.Source{Kind: KindRegistry, Name: r.Context().Name() + "@" + digest.String(), Digest: digest.String(), ConfigID: cid.String()},
		Config: cfg,
	}
	layers := make([]layerfs.Layer, len(rlayers))
	refs := make([]layerRef, len(rlayers))
	closers := make([]io.Closer, len(rlayers))
	indexes := make([]*layerfs.Indexed, len(rlayers))
	meter := newMeter(opts.Progress, "pulling "+r.String())
	meter.setLayers(len(rlayers))
	ld := newLoader(&opts)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(runtime.GOMAXPROCS(0), 4))
	blobs := newBlobFetcher(gctx, r.Context(), &opts)
	for _, i := range ld.order(cfg.RootFS.DiffIDs) {
		l := rlayers[i]
		g.Go(func() (err error) {
			defer layerfs.Recovered(&err, fmt.Sprintf("layer %d", i))
			if err := gctx.Err(); err != nil {
				return err
			}
			blob, err := l.Digest()
			if err != nil {
				return fmt.Errorf("layer %d: %w", i, err)
			}
			refs[i] = layerRef{blob: blob}
			diffID := cfg.RootFS.DiffIDs[i]
			download := func() (io.ReadCloser, error) {
				size, err := l.Size()
				if err == nil {
					meter.addTotal(size)
				}
				var rc io.ReadCloser
				if diffID.Hex != "" {
					rc, err = blobs.open(blob, size) // the diffID is checked as the layer is decompressed
				} else {
					rc, err = l.Compressed() // the blob digest is checked as it is read
				}
				if err != nil {
					return nil, fmt.Errorf("downloading: %w", err)
				}
				return meter.wrap(rc), nil
			}
			if opts.Select != nil {
				indexes[i], err = ld.streamed(blob, diffID, download)
				if err == nil {
					closers[i] = indexes[i]
					meter.layerDone()
				}
				return err
			}
			layers[i], closers[i], err = ld.cached(blob, diffID, download)
			if err == nil {
				meter.layerDone()
			}
			return err
		})
	}
	err = g.Wait()
	meter.finish()
	img.adopt(closers)
	if err != nil {
		img.Close()
		ld.abandon()
		return nil, err
	}
	if opts.Select != nil {
		return finishIndexed(ctx, img, indexes, refs, ld)
	}
	return finish(ctx, img, layers, refs, ld)
}
