package fuzz

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/fuzz/fuzztest"
)

// TestOperationsAndPinnedParams: --operations '^GET ' sends no other
// method; a pinned parameter goes out unchanged in every request.
func TestOperationsAndPinnedParams(t *testing.T) {
	s := &fuzztest.Server{Faulty: true}
	var mu sync.Mutex
	methods := map[string]int{}
	var formats []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		methods[r.Method]++
		if r.URL.Path == "/reports" {
			formats = append(formats, r.URL.RawQuery)
		}
		mu.Unlock()
		s.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	res := fuzzPlanted(t, ts.URL, Options{MaxRequests: 300, Operations: regexp.MustCompile(`^GET `), Params: map[string]string{"format": "pdf"}})
	if res.Requests != 300 || res.Operations != 4 {
		t.Fatalf("%d requests to %d operations; want 300 to the 4 GET operations", res.Requests, res.Operations)
	}
	if len(methods) != 1 || methods[http.MethodGet] == 0 {
		t.Fatalf("methods sent: %v; want GET only", methods)
	}
	if len(formats) < 10 {
		t.Fatalf("only %d requests to /reports", len(formats))
	}
	for _, q := range formats {
		if q != "format=pdf" {
			t.Fatalf("a /reports request sent %q; want format=pdf in every one", q)
		}
	}
	for _, f := range res.Findings {
		if f.Operation == "createItem" {
			t.Errorf("a finding on createItem, which was not selected: %+v", f)
		}
	}
	// By operationId too.
	res = fuzzPlanted(t, ts.URL, Options{MaxRequests: 20, Operations: regexp.MustCompile(`^healthz$`)})
	if res.Operations != 1 {
		t.Fatalf("%d operations for ^healthz$", res.Operations)
	}
}

func TestSelectionErrors(t *testing.T) {
	spec, err := Parse([]byte(fuzztest.Spec))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Operations: regexp.MustCompile(`^PATCH `)}, "matches none"},
		{Options{Params: map[string]string{"namespace": "default"}}, "no selected operation has a parameter namespace"},
	} {
		tc.opts.Target = "http://127.0.0.1:1"
		_, err := Run(t.Context(), spec, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%+v): %v; want an error saying %q", tc.opts, err, tc.want)
		}
	}
	if len(spec.Operations()) != 5 {
		t.Fatalf("the selection changed the caller's spec: %v", spec.Operations())
	}
}

// TestTLSTargetAndDocumentCredentials: a campaign over TLS with the
// target's CA; the document is fetched with the credentials from the
// target's host, and a document on another host gets none.
func TestTLSTargetAndDocumentCredentials(t *testing.T) {
	s := &fuzztest.Server{}
	var mu sync.Mutex
	var docAuth []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		docAuth = append(docAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+fuzztest.Token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(fuzztest.Spec))
	})
	mux.Handle("/", s.Handler())
	ts := httptest.NewTLSServer(mux)
	t.Cleanup(ts.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})

	if _, err := NewClient(TLS{CA: []byte("not pem"), CAName: "ca.pem"}); err == nil || !strings.Contains(err.Error(), "ca.pem") {
		t.Fatalf("NewClient with a bad CA: %v", err)
	}
	// Without the CA the target's certificate is refused.
	plain, err := NewClient(TLS{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(t.Context(), ts.URL+"/openapi.json", DocumentClient(plain, ts.URL, plantedAuth)); err == nil {
		t.Fatal("Load over TLS without the CA succeeded")
	} else if !strings.Contains(err.Error(), "x509: certificate signed by unknown authority") {
		t.Fatalf("Load without the CA: %v; want an unknown-authority error", err)
	}
	client, err := NewClient(TLS{CA: ca})
	if err != nil {
		t.Fatal(err)
	}
	// The document's host is not the target's: no credentials go to it.
	if _, err := Load(t.Context(), ts.URL+"/openapi.json", DocumentClient(client, "https://127.0.0.1:1", plantedAuth)); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Load from another host than the target: %v; want 401 (no credentials sent)", err)
	}
	spec, err := Load(t.Context(), ts.URL+"/openapi.json", DocumentClient(client, ts.URL, plantedAuth))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(t.Context(), spec, Options{Target: ts.URL, Auth: plantedAuth, MaxRequests: 200, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 0 || res.Requests != 200 {
		t.Fatalf("%d requests, findings %+v; want 200 and none on the clean server over TLS", res.Requests, res.Findings)
	}
	if len(docAuth) != 2 || docAuth[0] != "" || docAuth[1] == "" {
		t.Fatalf("document requests' Authorization: %q; want none, then the credentials", docAuth)
	}
}
