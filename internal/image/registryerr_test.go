package image

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// distributionNotFound answers every manifest request as the distribution
// registry (Debian's docker-registry) does for an unknown tag: a detail
// object that go-containerregistry prints as a Go map.
func distributionNotFound(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"2","Name":"demo/app"}}]}`))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestRegistryErrorNoGoMapSyntax: a registry's error detail is written as
// "(Name: demo/app, Tag: 2)", not "map[Name:demo/app Tag:2]", and the
// transport error stays reachable for errors.As.
func TestRegistryErrorNoGoMapSyntax(t *testing.T) {
	host := distributionNotFound(t)
	_, err := Open(context.Background(), "registry:"+host+"/demo/app:2", Options{CacheDir: t.TempDir()})
	if err == nil {
		t.Fatal("opened an unknown tag")
	}
	if !strings.Contains(err.Error(), "map[") {
		t.Logf("go-containerregistry no longer prints Go maps: %v", err)
	}
	got := RegistryError(err)
	msg := got.Error()
	if strings.Contains(msg, "map[") || !strings.Contains(msg, "MANIFEST_UNKNOWN: manifest unknown (Name: demo/app, Tag: 2)") {
		t.Errorf("message %q", msg)
	}
	var te *transport.Error
	if !errors.As(got, &te) || te.StatusCode != http.StatusNotFound {
		t.Errorf("the transport error is lost: %#v", got)
	}

	plain := errors.New("not a registry error")
	if RegistryError(plain) != plain || RegistryError(nil) != nil {
		t.Error("other errors are changed")
	}
	if s := diagnostic(transport.Diagnostic{Code: "DENIED", Message: "no", Detail: []any{1.0, "x"}}); s != `DENIED: no ([1,"x"])` {
		t.Errorf("list detail: %q", s)
	}
}
