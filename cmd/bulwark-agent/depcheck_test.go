package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps guards the agent's dependency direction: a node agent carries no
// server, store, API, console or admission code and no database client.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("listing the agent's dependencies: %v", err)
	}
	forbidden := []string{
		"github.com/bulwark-sec/bulwark/internal/store",
		"github.com/bulwark-sec/bulwark/internal/api",
		"github.com/bulwark-sec/bulwark/internal/server",
		"github.com/bulwark-sec/bulwark/internal/console",
		"github.com/bulwark-sec/bulwark/internal/admission",
		"github.com/jackc/pgx",
		// modernc.org/sqlite is linked: the rpm cataloger reads rpmdb.sqlite
		// for the host inventory (docs/decisions.md).
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps returned %d packages; expected the agent's closure", len(deps))
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("bulwark-agent imports %s", d)
			}
		}
	}
}
