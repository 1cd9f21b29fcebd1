package allowlist

import "github.com/bulwark-sec/bulwark/internal/sbom"

// Table keeps of an inventory's file table the entries FromInventory reads:
// regular files that have a content digest, an execute bit or a shared
// library's name, and symlinks (the entrypoint is resolved through them).
// The server stores this much of a scanned image for its agents; a list
// built from Table(files) is the list built from files.
func Table(files []sbom.File) []sbom.File {
	out := make([]sbom.File, 0, len(files)/4)
	for _, f := range files {
		switch {
		case f.Type == "symlink":
		case f.Type == "file" && (f.Digest != "" || executable(f.Mode) || sharedLibrary(f.Path)):
		default:
			continue
		}
		f.Size = 0 // not read by FromInventory
		out = append(out, f)
	}
	return out
}
