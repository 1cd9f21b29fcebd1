package kube

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/pki"
)

// A kubeconfig with the CA and a token in files next to it reaches a TLS
// server that checks the token; the API server's error Status comes back
// as a *StatusError.
func TestLoadAndCall(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/api/v1/namespaces/a/pods/p":
			json.NewEncoder(w).Encode(map[string]any{"metadata": map[string]string{"name": "p", "uid": "u1"}})
		default:
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "message": "pods \"q\" not found", "code": 404})
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := pemOf(srv.Certificate().Raw)
	os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o600)
	os.WriteFile(filepath.Join(dir, "token"), []byte("s3cret\n"), 0o600)
	cfg := `apiVersion: v1
kind: Config
preferences: {}
clusters:
- name: c
  cluster: {server: ` + srv.URL + `, certificate-authority: ca.crt}
users:
- name: u
  user: {tokenFile: token}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`
	path := filepath.Join(dir, "kubeconfig")
	os.WriteFile(path, []byte(cfg), 0o600)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var pod struct{ Metadata struct{ Name, UID string } }
	if err := c.Get(context.Background(), "/api/v1/namespaces/a/pods/p", &pod); err != nil || pod.Metadata.UID != "u1" {
		t.Fatalf("get: %+v %v", pod, err)
	}
	err = c.Get(context.Background(), "/api/v1/namespaces/a/pods/q", &pod)
	if !IsNotFound(err) || IsConflict(err) || !strings.Contains(err.Error(), `pods "q" not found`) {
		t.Errorf("not found: %v", err)
	}
	if err := c.Get(context.Background(), "relative", &pod); err == nil {
		t.Error("a relative path was called")
	}
}

func pemOf(der []byte) []byte {
	return []byte("-----BEGIN CERTIFICATE-----\n" + base64.StdEncoding.EncodeToString(der) + "\n-----END CERTIFICATE-----\n")
}

// Every kubeconfig mistake is an error that names it.
func TestLoadRefuses(t *testing.T) {
	ca, err := pki.NewCA("t", 3600e9)
	if err != nil {
		t.Fatal(err)
	}
	caData := base64.StdEncoding.EncodeToString(ca.CertPEM)
	base := func(user string) string {
		return "clusters:\n- name: c\n  cluster: {server: https://127.0.0.1:1, certificate-authority-data: " + caData + "}\n" +
			"users:\n- name: u\n  user: " + user + "\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n"
	}
	for doc, want := range map[string]string{
		base("{exec: {command: aws}}"):                                           "helper program",
		base("{auth-provider: {name: gcp}}"):                                     "helper program",
		base("{client-certificate-data: bm90IGEgY2VydA==}"):                      "client certificate",
		base("{tokenFile: /nonexistent/token}"):                                  "token file",
		base("{token: t}") + "\n":                                                "",
		"current-context: nope\n":                                                `no context "nope"`,
		"contexts:\n- name: x\n  context: {cluster: gone}\ncurrent-context: x\n": `no cluster "gone"`,
		"clusters: [\n":                                                          "parsing kubeconfig",
		strings.Replace(base("{token: t}"), caData, "bm90IHBlbQ==", 1):           "no PEM certificate",
	} {
		path := filepath.Join(t.TempDir(), "kubeconfig")
		os.WriteFile(path, []byte(doc), 0o600)
		_, err := Load(path)
		if want == "" {
			if err != nil {
				t.Errorf("valid kubeconfig refused: %v", err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", doc, err, want)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing kubeconfig loaded")
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := Load(""); err == nil || !strings.Contains(err.Error(), "not running in a cluster") {
		t.Errorf("in-cluster outside a cluster: %v", err)
	}
}
