package agentproto

import (
	"time"
)

// Paths of the identity routes an agent calls.
const (
	IdentityX509Path    = "/api/v1/identity/x509"
	IdentityJWTPath     = "/api/v1/identity/jwt"
	IdentityChangesPath = "/api/v1/identity/changes"
	IdentityBundlePath  = "/api/v1/identity/bundle"
	// IdentityBundlesPath lists the federated trust domains' bundles.
	IdentityBundlesPath = "/api/v1/identity/bundles"
)

// Limits of an identity request.
const (
	MaxCSR       = 4 << 10 // bytes of a DER certificate request
	MaxAudiences = 16
	MaxAudience  = 1024 // bytes of one audience
	// MaxChangesWait bounds the long poll of IdentityChangesPath.
	MaxChangesWait = 30 * time.Second
)

// Workload is the container an agent asks an identity for, as the agent
// attributed it (kernel peer credentials -> cgroup -> container runtime),
// never as the workload described itself.
type Workload struct {
	Container      string            `json:"container"`
	Image          string            `json:"image"` // manifest digest
	Namespace      string            `json:"namespace"`
	Pod            string            `json:"pod,omitempty"`
	ServiceAccount string            `json:"serviceAccount,omitempty"`
	App            string            `json:"app,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
}

// X509Request is the body of POST IdentityX509Path: the workload and a
// certificate request over a key made on the node (the private key never
// leaves it; the request's signature proves the agent holds it).
type X509Request struct {
	Node     string   `json:"node"`
	Workload Workload `json:"workload"`
	CSR      []byte   `json:"csr"` // DER, base64 in JSON
}

// X509Response is the issued X.509-SVID: leaf first, then the
// intermediate, each DER.
type X509Response struct {
	SpiffeID  string    `json:"spiffeID"`
	Chain     [][]byte  `json:"chain"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// JWTRequest is the body of POST IdentityJWTPath.
type JWTRequest struct {
	Node      string   `json:"node"`
	Workload  Workload `json:"workload"`
	Audiences []string `json:"audiences"`
}

// JWTResponse is an issued JWT-SVID.
type JWTResponse struct {
	SpiffeID  string    `json:"spiffeID"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// Refusal is the body of a 403 answer to an identity request: a decision
// not to issue, with its reason (identity.Reason*).
type Refusal struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

// Changes is the answer of GET IdentityChangesPath?after=N&wait=D: the
// digests whose certification changed after N (in commit order) and the
// sequence number to ask after next; without after, only the current
// sequence number, at once.
type Changes struct {
	Seq     int64    `json:"seq"`
	Digests []string `json:"digests"`
}

// Validate checks a workload strictly.
func (w *Workload) Validate() error {
	if err := name("container", w.Container); err != nil {
		return err
	}
	if err := name("image", w.Image); err != nil {
		return err
	}
	for _, f := range [][2]string{{"namespace", w.Namespace}, {"pod", w.Pod}, {"serviceAccount", w.ServiceAccount}, {"app", w.App}} {
		if len(f[1]) > MaxName {
			return invalid("%s is longer than %d bytes", f[0], MaxName)
		}
		if err := field(f[0], f[1]); err != nil {
			return err
		}
	}
	if len(w.Labels) > MaxLabels {
		return invalid("%d labels, at most %d", len(w.Labels), MaxLabels)
	}
	for k, v := range w.Labels {
		if err := name("label key", k); err != nil {
			return err
		}
		if err := field("label "+k, v); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks an X.509-SVID request (the CSR's content is checked by
// the server when it parses it).
func (r *X509Request) Validate() error {
	if err := name("node", r.Node); err != nil {
		return err
	}
	if err := r.Workload.Validate(); err != nil {
		return err
	}
	if len(r.CSR) == 0 || len(r.CSR) > MaxCSR {
		return invalid("the certificate request is %d bytes (1 to %d)", len(r.CSR), MaxCSR)
	}
	return nil
}

// Validate checks a JWT-SVID request.
func (r *JWTRequest) Validate() error {
	if err := name("node", r.Node); err != nil {
		return err
	}
	if err := r.Workload.Validate(); err != nil {
		return err
	}
	if len(r.Audiences) == 0 || len(r.Audiences) > MaxAudiences {
		return invalid("1 to %d audiences, not %d", MaxAudiences, len(r.Audiences))
	}
	for _, a := range r.Audiences {
		if a == "" || len(a) > MaxAudience {
			return invalid("an audience is empty or longer than %d bytes", MaxAudience)
		}
		if err := field("audience", a); err != nil {
			return err
		}
	}
	return nil
}
