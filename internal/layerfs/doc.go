// Package layerfs squashes the layers of a container image into one read-only
// filesystem view, the way an overlay mount would show it, without writing a
// single file to disk.
//
// Each layer is an uncompressed tar that can be read at random offsets
// (io.ReaderAt). Build indexes every layer's tar headers (seeking over file
// contents), then applies the layers bottom up: OCI whiteouts (.wh.NAME) and
// opaque directories (.wh..wh..opq) remove what lower layers wrote, hard links
// share the data of their target, and every node remembers the layer that last
// wrote it and where its bytes live. Reading a file later is one ReadAt on the
// layer, so catalogers read only what they need.
//
// Paths are absolute and clean ("/etc/os-release"). Symbolic links are
// resolved inside the image root only: an absolute target is taken relative
// to the image root, and a target that climbs above the root with ".." is an
// error (ErrOutsideRoot), as is a loop (ErrLoop). Malformed tar entries
// (absolute names, names that climb out with "..", hard links to missing
// targets, data past the end of the layer) are errors that name the layer and
// the entry.
//
// IndexStream is the other way in, for compressed layers: one pass over the
// tar stream in order, the same checks, the content of only the files a
// Selector asks for kept (in memory, past a limit in an unlinked temporary
// file), SHA-256 digests of executables, ELF files, scripts and shared
// libraries (or of every file) computed on the way, everything else
// discarded as it is read. BuildIndexed squashes such layers exactly as
// Build does; opening a file whose content was not kept is ErrNotRetained.
//
// FromDir builds the same view over a plain root filesystem directory; files
// are opened through os.Root so no symlink can lead outside it.
package layerfs
