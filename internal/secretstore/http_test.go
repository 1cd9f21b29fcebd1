package secretstore

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/secretstore/svidtest"
)

const (
	apiID     = "spiffe://prod.example/ns/payments/sa/api"
	oldID     = "spiffe://prod.example/ns/payments/sa/old"
	driftID   = "spiffe://prod.example/ns/payments/sa/drifted"
	usID      = "spiffe://prod.example/ns/payments/sa/us"
	ungrantID = "spiffe://prod.example/ns/payments/sa/reports"
	otherID   = "spiffe://prod.example/ns/shop/sa/web"
)

var testWorkloads = workloads{
	apiID:     {Digest: "sha256:aa", Node: "node-eu", Region: "eu-west-1", Application: "payments", Certified: []string{"gold"}},
	oldID:     {Digest: "sha256:bb", Node: "node-eu", Region: "eu-west-1", Application: "payments"},
	driftID:   {Digest: "sha256:aa", Node: "node-eu", Region: "eu-west-1", Application: "payments", Certified: []string{"gold"}, Drifted: true},
	usID:      {Digest: "sha256:aa", Node: "node-us", Region: "us-east-1", Application: "payments", Certified: []string{"gold"}},
	ungrantID: {Digest: "sha256:cc", Node: "node-eu", Region: "eu-west-1", Application: "reports", Certified: []string{"gold"}},
	otherID:   {Digest: "sha256:dd", Node: "node-eu", Region: "eu-west-1", Application: "shop", Certified: []string{"gold"}},
}

var strict = Policy{SPIFFEIDs: []string{"spiffe://prod.example/ns/payments/**"}, CertifiedUnder: "gold", NoDrift: true, RequireGrant: true}

// TestWorkloadFetchOverMTLS fetches a secret with an SVID through the
// workload API and the Vault KV v2 path, and is refused for each unmet
// requirement, each refusal audited with its reason.
func TestWorkloadFetchOverMTLS(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t, "", testWorkloads, grants{"payments": {"pii-eu"}, "reports": {"pii"}})
	if _, err := s.Put(ctx, "admin", "payments/db", Spec{Kind: KindKV, Classes: []string{"pii-eu"}, Policy: strict},
		kv("username", "app", "password", "hunter2")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "admin", "payments/ca.pem", Spec{Kind: KindFile, Policy: payments}, Value{File: []byte("PEM\x00bytes")}); err != nil {
		t.Fatal(err)
	}
	ca, err := svidtest.New()
	if err != nil {
		t.Fatal(err)
	}
	serverCert, err := ca.Issue()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(NewHandler(s, nil))
	srv.TLS = TLSConfig(serverCert, ca.Pool)
	srv.StartTLS()
	defer srv.Close()

	get := func(id, path string) (int, string) {
		t.Helper()
		var c *http.Client
		if id == "" {
			c = ca.Client(nil)
		} else {
			cert, err := ca.Issue(id)
			if err != nil {
				t.Fatal(err)
			}
			c = ca.Client(&cert)
		}
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.ReplaceAll(string(b), `\"`, `"`)
	}

	code, body := get(apiID, WorkloadPath+"payments/db")
	var kvr KVResponse
	if code != 200 || json.Unmarshal([]byte(body), &kvr) != nil || kvr.Data["password"] != "hunter2" || kvr.Version != 1 {
		t.Fatalf("release = %d %s", code, body)
	}
	// Vault KV v2 read path, as a Vault client reads it.
	code, body = get(apiID, VaultKVPath+"payments/db")
	var vr struct {
		Data struct {
			Data     map[string]string `json:"data"`
			Metadata struct {
				Version int64 `json:"version"`
			} `json:"metadata"`
		} `json:"data"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &vr) != nil || vr.Data.Data["username"] != "app" || vr.Data.Metadata.Version != 1 {
		t.Fatalf("vault read = %d %s", code, body)
	}
	code, body = get(apiID, WorkloadPath+"payments/ca.pem")
	if code != 200 || body != "PEM\x00bytes" {
		t.Fatalf("file = %d %q", code, body)
	}
	// Rotation: the next fetch has the new value, no restart.
	if _, err := s.Rotate(ctx, "admin", "payments/db", kv("username", "app", "password", "rotated")); err != nil {
		t.Fatal(err)
	}
	if code, body = get(apiID, WorkloadPath+"payments/db"); code != 200 || !strings.Contains(body, `"rotated"`) {
		t.Fatalf("after rotation = %d %s", code, body)
	}

	refusals := []struct{ id, want string }{
		{oldID, `not certified under policy "gold"`},
		{driftID, "drifted"},
		{usID, "region us-east-1"},
		{ungrantID, `application "reports" is not granted data class pii-eu`},
		{otherID, "matches none"},
		{"spiffe://prod.example/ns/payments/sa/ghost", "knows no running workload"},
	}
	for _, r := range refusals {
		code, body := get(r.id, WorkloadPath+"payments/db")
		if code != 403 || !strings.Contains(body, r.want) || strings.Contains(body, "hunter2") {
			t.Errorf("%s: %d %s, want 403 with %q", r.id, code, body, r.want)
		}
	}
	if code, body := get(usID, VaultKVPath+"payments/db"); code != 403 || !strings.Contains(body, `"errors"`) {
		t.Errorf("vault refusal = %d %s", code, body)
	}
	if code, body := get(apiID, WorkloadPath+"payments/nope"); code != 404 {
		t.Errorf("unknown secret = %d %s", code, body)
	}
	if code, body := get(apiID, WorkloadPath+"payments/../db"); code == 200 {
		t.Errorf("traversal = %d %s", code, body)
	}
	if code, _ := get("", WorkloadPath+"payments/db"); code != 0 {
		t.Errorf("no client certificate: got HTTP %d, want a failed handshake", code)
	}
	// Every release and refusal is audited with identity, digest, node,
	// region and reason; never the value.
	var released, refused int
	reasons := map[string]string{}
	for _, r := range auditLog(t, st) {
		if strings.Contains(string(r.After), "hunter2") || strings.Contains(string(r.After), "rotated") {
			t.Fatalf("audit entry holds the value: %s", r.After)
		}
		var d struct{ Identity, Digest, Node, Region, Reason string }
		json.Unmarshal(r.After, &d)
		switch r.Action {
		case "secret.release":
			released++
		case "secret.refuse":
			refused++
			reasons[d.Identity] = d.Reason
			if d.Identity != "" && testWorkloads[d.Identity].Node != "" && (d.Node == "" || d.Region == "" || d.Digest == "") {
				t.Errorf("refusal of %s lacks node/region/digest: %s", d.Identity, r.After)
			}
		}
	}
	if released != 4 || refused != 8 {
		t.Errorf("audited %d releases and %d refusals, want 4 and 8", released, refused)
	}
	for _, r := range refusals {
		if !strings.Contains(reasons[r.id], r.want) {
			t.Errorf("audit reason of %s = %q, want %q", r.id, reasons[r.id], r.want)
		}
	}
}

func TestMatchID(t *testing.T) {
	for _, c := range []struct {
		g, id string
		want  bool
	}{
		{"spiffe://td/ns/a/**", "spiffe://td/ns/a/sa/x", true},
		{"spiffe://td/ns/a/**", "spiffe://td/ns/a", false},
		{"spiffe://td/ns/a/**", "spiffe://td/ns/ab/sa/x", false},
		{"spiffe://td/ns/*/sa/web", "spiffe://td/ns/shop/sa/web", true},
		{"spiffe://td/ns/*/sa/web", "spiffe://td/ns/shop/x/sa/web", false},
		{"spiffe://td/ns/a/sa/x", "spiffe://td/ns/a/sa/x", true},
		{"spiffe://td/ns/a/sa/x", "spiffe://other/ns/a/sa/x", false},
	} {
		if got := MatchID(c.g, c.id); got != c.want {
			t.Errorf("MatchID(%q, %q) = %v", c.g, c.id, got)
		}
	}
}

func TestLimitersPerIdentity(t *testing.T) {
	l := newLimiters(1, 3)
	for i := range 3 {
		if !l.allow("spiffe://a/x") {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if l.allow("spiffe://a/x") {
		t.Fatal("past the burst allowed")
	}
	if !l.allow("spiffe://a/y") {
		t.Fatal("another identity shares the bucket")
	}
	if l.throttled.Load() != 1 {
		t.Fatalf("throttled = %d", l.throttled.Load())
	}
}
