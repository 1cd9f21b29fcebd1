package cli

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
)

// TestServerIdentityTEE: `bulwark server` with an identity TEE rule for
// namespace tee refuses a certified workload there ("unattested": no
// confidential instance) while a workload of another namespace gets its
// SVID; a malformed rule stops the server with what is wrong.
func TestServerIdentityTEE(t *testing.T) {
	d, _ := name.NewDigest("registry.example/app@sha256:" + strings.Repeat("e", 64))
	srv := servertest.Start(t, server.Config{WatchInterval: time.Hour, Identity: server.IdentityConfig{TrustDomain: "tee.example",
		Template: "spiffe://{trustDomain}/ns/{namespace}/container/{container}", RequireTEE: []string{"ns:tee=sev-snp,tdx"}}},
		servertest.Image{Digest: d, Tag: "1", Certified: true})
	post := func(path string, body any) (int, []byte) { return srv.Post(t, path, body) }
	post(agentproto.HeartbeatPath, agentproto.Heartbeat{Node: "n1", Mode: "detect", State: agentproto.StateDetectingOnly})
	key, _ := identity.NewKey()
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	code, body := post(agentproto.IdentityX509Path, agentproto.X509Request{Node: "n1", CSR: csr, Workload: agentproto.Workload{Container: "c1", Image: d.DigestStr(), Namespace: "tee"}})
	var ref agentproto.Refusal
	json.Unmarshal(body, &ref)
	if code != http.StatusForbidden || ref.Reason != identity.ReasonUnattested || !strings.Contains(ref.Detail, "sev-snp or tdx") {
		t.Fatalf("namespace tee without an instance: %d %s", code, body)
	}
	if code, body := post(agentproto.IdentityX509Path, agentproto.X509Request{Node: "n1", CSR: csr, Workload: agentproto.Workload{Container: "c2", Image: d.DigestStr(), Namespace: "web"}}); code != http.StatusOK {
		t.Fatalf("namespace web: %d %s", code, body)
	}

	_, errb, code := run(t, "server", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--trust-domain", "tee.example",
		"--identity-require-tee", "ns:tee=nitro")
	if code == 0 || !strings.Contains(errb, "--identity-require-tee") || !strings.Contains(errb, "nitro") {
		t.Fatalf("a malformed rule: %d %s", code, errb)
	}
}
