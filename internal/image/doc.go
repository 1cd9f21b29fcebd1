// Package image opens container images from every place they live — a
// registry, an OCI image layout directory, an OCI archive, a `docker save`
// archive, or a plain root filesystem directory — and turns them into a
// squashed, read-only filesystem view (layerfs.FS) plus their config.
//
// Each layer must be readable at random offsets so that catalogers read only
// the bytes they need. Uncompressed layers inside a local archive or layout
// are read in place. Compressed layers (gzip, zstd) and registry layers are
// decompressed once, streaming and with a size limit against decompression
// bombs, into the layer cache (CacheDir/layers/sha256/<diffID>.tar); their
// diffID is verified while writing. A second run of the same image reads the
// cache and downloads nothing but the manifest and config.
//
// Registry credentials come from the Docker config and its credential helpers
// (go-containerregistry's default keychain). Registries on localhost, loopback
// and private addresses are spoken to over plain HTTP, as go-containerregistry
// decides; Options.Insecure allows it for any registry.
package image
