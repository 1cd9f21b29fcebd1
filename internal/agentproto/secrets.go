package agentproto

import "regexp"

// SecretNameRE is a secret's name: '/'-separated segments of letters,
// digits, '.', '_' and '-', each starting with a letter or digit, so no
// segment is "." or "..": a name written as a path cannot climb out of
// the directory it is written to. The server and the agent both hold
// names to it.
var SecretNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$`)

// SecretsRequest is the body of POST /api/v1/agent/secrets: the agent
// asks for the secrets a container declares it wants (its label
// LabelSecrets), to write them to the container's secret volume.
type SecretsRequest struct {
	Node      string   `json:"node"`
	Container string   `json:"container"`
	Names     []string `json:"names"`
}

// LabelSecrets on a container lists the secrets it wants delivered, comma
// separated ("payments/db,tls/cert.pem"). The server decides which it
// gets.
const LabelSecrets = "bulwark.dev/secrets"

// MaxSecretsPerContainer bounds a request.
const MaxSecretsPerContainer = 32

// DeliveredSecret is one answer of POST /api/v1/agent/secrets: the value,
// or why not.
type DeliveredSecret struct {
	Name    string            `json:"name"`
	Version int64             `json:"version,omitempty"`
	Kind    string            `json:"kind,omitempty"` // kv or file
	Data    map[string]string `json:"data,omitempty"`
	File    []byte            `json:"file,omitempty"`
	Refused string            `json:"refused,omitempty"` // the reason, when not released
}

// SecretsResponse is the answer of POST /api/v1/agent/secrets.
type SecretsResponse struct {
	Secrets []DeliveredSecret `json:"secrets"`
}

// Validate reports the first thing wrong with r.
func (r SecretsRequest) Validate() error {
	if r.Node == "" || len(r.Node) > 253 || r.Container == "" || len(r.Container) > 128 {
		return invalid("node (1-253 characters) and container (1-128) are required")
	}
	if len(r.Names) == 0 || len(r.Names) > MaxSecretsPerContainer {
		return invalid("%d names, want 1-%d", len(r.Names), MaxSecretsPerContainer)
	}
	return nil
}
