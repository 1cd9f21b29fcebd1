package layerfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"runtime"

	"golang.org/x/sync/errgroup"
)

// FillDigests hashes, on the seek path, the regular files a streaming pass
// would have hashed (mode DigestExecutables or DigestAll) and whose Digest
// is still empty. Files whose content was not kept are left without one.
func (f *FS) FillDigests(ctx context.Context, mode Digests) error {
	if mode == DigestNone {
		return nil
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, n := range f.Files() {
		if !n.IsRegular() || n.Digest != "" || n.sparse || n.off < 0 && f.dir == nil {
			continue
		}
		g.Go(func() (err error) {
			defer Recovered(&err, "hashing "+n.Path)
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := f.Open(n)
			if err != nil {
				return nil // unreadable here: no digest, as a streaming pass that skipped it
			}
			defer r.Close()
			head := make([]byte, min(headSize, n.Size))
			k, _ := io.ReadFull(r, head)
			if mode == DigestExecutables && !Hashable(n.Path, n.Mode, head[:k]) {
				return nil
			}
			h := sha256.New()
			h.Write(head[:k])
			if _, err := io.Copy(h, r); err != nil {
				return err
			}
			n.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
			return nil
		})
	}
	return g.Wait()
}
