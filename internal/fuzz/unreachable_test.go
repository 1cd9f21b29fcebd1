package fuzz

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

const pingSpec = `{"openapi": "3.0.3", "info": {"title": "x", "version": "1"}, "paths": {"/ping": {"get": {"responses": {"200": {"description": "ok"}}}}}}`

// A target nobody listens on is an error, not findings: "bulwark fuzz" at a
// server that was not started reported "server-error high: connection
// dropped" findings and exited 1, as if the server were broken.
func TestTargetNotListeningIsAnError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	spec, err := Parse([]byte(pingSpec))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(t.Context(), spec, Options{Target: "http://" + addr, MaxRequests: 10})
	if !errors.Is(err, ErrTargetUnreachable) {
		t.Fatalf("Run = %+v, %v; want ErrTargetUnreachable", res, err)
	}
}

// A target that answered and then went away is still a finding: the server
// died under the campaign.
func TestTargetThatDiesIsAFinding(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		go srv.CloseClientConnections()
		go srv.Listener.Close()
	}))
	defer srv.Close()
	spec, err := Parse([]byte(pingSpec))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(t.Context(), spec, Options{Target: srv.URL, MaxRequests: 10})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(res.Findings) == 0 || res.Findings[0].Rule != RuleServerError {
		t.Fatalf("findings %+v, want a server-error", res.Findings)
	}
}
