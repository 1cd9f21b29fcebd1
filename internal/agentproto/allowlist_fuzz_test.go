package agentproto

import (
	"encoding/json"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
)

// FuzzAllowlistAnswer feeds the agent's handling of a server's allowlist
// answer arbitrary JSON: decoding, Validate and compiling what validates
// into a list never panic (a hostile or broken server makes the agent fall
// back, not crash).
func FuzzAllowlistAnswer(f *testing.F) {
	const d = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	f.Add([]byte(`{"image":"` + d + `","entrypoint":["app"],"env":["PATH=/bin"],"files":[{"path":"/bin/app","type":"file","mode":"0755",` +
		`"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},{"path":"/usr/bin/app","type":"symlink","linkname":"../../bin/app"}]}`))
	f.Add([]byte(`{"image":"` + d + `","entrypoint":["/a"],"files":[{"path":"/a","type":"symlink","linkname":"/a"}]}`))
	f.Add([]byte(`{"image":"` + d + `","files":[{"path":"rel","type":"file","mode":"zz","digest":"sha256:xyz"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var a Allowlist
		if json.Unmarshal(b, &a) != nil || a.Validate(d) != nil {
			return
		}
		_, _ = allowlist.FromInventory(d, a.Files, allowlist.Config{Entrypoint: a.Entrypoint, Cmd: a.Cmd, Env: a.Env})
	})
}
