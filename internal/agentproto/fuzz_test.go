package agentproto

import (
	"encoding/json"
	"testing"
)

// FuzzHostInventory feeds the server's decoding and validation of a host
// inventory arbitrary JSON: no panic, and whatever validates survives a
// round trip and still validates.
func FuzzHostInventory(f *testing.F) {
	f.Add([]byte(`{"node":"n","generated":"2026-01-01T00:00:00Z","packages":[{"type":"deb","name":"a","version":"1"}],"running":{"sha256:` +
		`aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa":["c1"]}}`))
	f.Add([]byte(`{"node":"n","generated":"2026-01-01T00:00:00Z","distro":{"id":""},"running":{"sha256:../x":[]}}`))
	f.Add([]byte(`{"node":"a b","packages":null,"running":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var hi HostInventory
		if json.Unmarshal(b, &hi) != nil || hi.Validate() != nil {
			return
		}
		again, err := json.Marshal(hi)
		if err != nil {
			t.Fatal(err)
		}
		var back HostInventory
		if err := json.Unmarshal(again, &back); err != nil {
			t.Fatal(err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("a valid inventory no longer validates after a round trip: %v", err)
		}
	})
}
