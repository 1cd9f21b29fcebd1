package server

import (
	"fmt"
	"log/slog"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/kube"
	"github.com/bulwark-sec/bulwark/internal/nodeauth"
)

// useAgentAuth makes the API accept the agents' projected service account
// tokens, reviewed by the cluster kc (docs/server.md "Agent
// authentication"), when cfg names the agents' service account.
func useAgentAuth(cfg Config, kc *kube.Client, h *api.Handler, log *slog.Logger) error {
	if cfg.AgentServiceAccount == "" {
		return nil
	}
	r, err := nodeauth.New(nodeauth.Config{Client: kc, Audience: cfg.AgentAudience, ServiceAccount: cfg.AgentServiceAccount})
	if err != nil {
		return fmt.Errorf("setting up agent authentication: %w", err)
	}
	h.UseAgentAuth(r)
	log.Info("agents may authenticate with their pod's service account token", "serviceAccount", cfg.AgentServiceAccount,
		"audience", cfg.AgentAudience, "cluster", kc.Server)
	return nil
}
