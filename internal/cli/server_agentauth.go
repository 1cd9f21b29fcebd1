package cli

import (
	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/nodeauth"
	"github.com/bulwark-sec/bulwark/internal/server"
)

// agentAuthOptions are the flags of agents' service account tokens
// (docs/server.md "Agent authentication").
type agentAuthOptions struct {
	serviceAccount, audience string
}

func (o *agentAuthOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.serviceAccount, "agent-service-account", "", "NAMESPACE/NAME of the agents' service account: agents may then authenticate with their pod's projected token, reviewed by the --kubeconfig cluster, and speak for their pod's node only (default: none, API tokens only)")
	cmd.Flags().StringVar(&o.audience, "agent-token-audience", nodeauth.DefaultAudience, "audience the agents' projected service account tokens must be for")
}

func (o *agentAuthOptions) apply(cfg *server.Config) {
	cfg.AgentServiceAccount, cfg.AgentAudience = o.serviceAccount, o.audience
}
