package agentproto

import (
	"strings"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// AllowlistPath is GET AllowlistPath+"{digest}?node=NAME": the agent asks
// the server for the allowlist of a manifest digest it is about to
// enforce.
const AllowlistPath = "/api/v1/agent/allowlists/"

// MaxAllowlistFiles bounds the file table of one answer (the agent's
// allowlist.MaxEntries is larger; a table past this is refused whole).
const MaxAllowlistFiles = 1 << 20

// Allowlist is the answer of GET /api/v1/agent/allowlists/{digest}: what
// the server's scan of the digest found that an allowlist is made of.
type Allowlist struct {
	// Image is the manifest digest asked for.
	Image string `json:"image"`
	// Certification is the digest's certification status when answered
	// ("certified", "revoked", "not_certified", "" when never judged).
	Certification string `json:"certification,omitempty"`
	// Entrypoint, Cmd and Env are the image config's.
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	// Files are the executables, shared libraries and symlinks of the
	// image's file table (allowlist.Table), with content digests and the
	// layer that wrote each.
	Files []sbom.File `json:"files"`
}

// Validate checks an answer against the digest asked for: the agent
// compiles it into what it enforces.
func (a *Allowlist) Validate(digest string) error {
	if a.Image != digest {
		return invalid("the answer is for %q, not %q", a.Image, digest)
	}
	if len(a.Files) > MaxAllowlistFiles {
		return invalid("%d files, more than %d", len(a.Files), MaxAllowlistFiles)
	}
	for _, v := range [][]string{a.Entrypoint, a.Cmd, a.Env} {
		if len(v) > MaxLabels*4 {
			return invalid("an entrypoint, cmd or env of %d entries", len(v))
		}
		for _, s := range v {
			if err := field("config entry", s); err != nil {
				return err
			}
		}
	}
	return nil
}

// ValidDigest reports whether s is "sha256:" and 64 lowercase hex digits:
// the only image names the route accepts.
func ValidDigest(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if (h[i] < '0' || h[i] > '9') && (h[i] < 'a' || h[i] > 'f') {
			return false
		}
	}
	return true
}
