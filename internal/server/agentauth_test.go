package server

import (
	"log/slog"
	"strings"
	"testing"
)

// The agents' service account without a cluster to review their tokens is
// a configuration error at start, not a server that refuses every agent.
func TestAgentServiceAccountNeedsKubeconfig(t *testing.T) {
	err := Run(t.Context(), Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
		AgentServiceAccount: "bulwark-system/bulwark-agent"})
	if err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Fatalf("Run: %v, want an error naming --kubeconfig", err)
	}
}
