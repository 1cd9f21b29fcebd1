package cli

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRegistryErrorMessage: the CLI's one-line error names the registry's
// detail in words, never in Go map syntax ("map[Tag:2]").
func TestRegistryErrorMessage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"2"}}]}`))
	}))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/demo/app:2"
	_, stderr, code := run(t, "sbom", ref, "--cache-dir", t.TempDir())
	if code != ExitError {
		t.Fatalf("exit %d, want %d: %s", code, ExitError, stderr)
	}
	if strings.Contains(stderr, "map[") || !strings.Contains(stderr, "MANIFEST_UNKNOWN: manifest unknown (Tag: 2)") {
		t.Errorf("stderr: %s", stderr)
	}
}
