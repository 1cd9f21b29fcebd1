package agent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/kerneltest"
	"github.com/bulwark-sec/bulwark/internal/secretfile"
	"github.com/bulwark-sec/bulwark/internal/secretstore"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
)

// TestRunFlowsAndSecrets runs the agent's two governance loops against a
// real server, with this test process standing in for a watched
// container: RunFlows reports its connection to a catalogued data store,
// and RunSecrets writes the secret the container asks for into its volume
// on a tmpfs.
func TestRunFlowsAndSecrets(t *testing.T) {
	if os.Geteuid() != 0 {
		kerneltest.Skip(t, "mounting a tmpfs needs root")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c)
		}
	}()
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalogue.yaml")
	os.WriteFile(cat, []byte("classes: [{name: pii-eu}]\nregulations: [{name: gdpr, classes: [pii-eu]}]\n"+
		"stores: [{name: customers-db, address: '"+ln.Addr().String()+"', classes: [pii-eu]}]\n"), 0o600)
	srv := servertest.Start(t, server.Config{APILimits: api.Limits{Rate: -1}, Secrets: server.SecretsConfig{Catalogue: cat}})
	tok := operatorToken(t, srv)
	pol := secretstore.Policy{SPIFFEIDs: []string{"spiffe://bulwark.local/ns/shop/**"}}
	if code, b := srv.Call(t, srv.Admin, "PUT", "/api/v1/secrets/shop%2Fdb", api.SecretRequest{Data: map[string]string{"password": "from-the-agent"}, Policy: pol}); code != 201 {
		t.Fatalf("put: %d %s", code, b)
	}
	labels := map[string]string{agentproto.LabelPodNamespace: "shop", agentproto.LabelPodName: "self", agentproto.LabelSecrets: "shop/db"}
	if code, b := srv.Call(t, tok, "POST", "/api/v1/agent/heartbeat", agentproto.Heartbeat{Node: "node-1", Mode: "detect",
		State: "detecting-only", Reason: "test", Containers: []agentproto.Container{{ID: "self", Namespace: "test", Image: testImage, Labels: labels}}}); code != 200 {
		t.Fatalf("heartbeat: %d %s", code, b)
	}
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=4m,mode=0700"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(root, unix.MNT_DETACH)
	a := &Agent{log: slog.New(slog.DiscardHandler), containers: map[string]*container{
		"self": {id: "self", namespace: "test", image: testImage, pid: uint32(os.Getpid()), labels: labels}}}
	s := NewSender(SenderConfig{URL: srv.URL, Token: tok, Node: "node-1"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.RunFlows(ctx, s, "node-1", 100*time.Millisecond)
	go a.RunSecrets(ctx, s, &secretfile.Volumes{Root: root}, "node-1", 200*time.Millisecond)

	var report, secret string
	for end := time.Now().Add(45 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		_, report = srv.Call(t, srv.Admin, "GET", "/api/v1/governance/report?format=csv", nil)
		b, _ := os.ReadFile(filepath.Join(root, "self", "shop", "db", "password"))
		secret = string(b)
		if strings.Contains(report, "customers-db") && secret != "" {
			break
		}
	}
	if !strings.Contains(report, "customers-db,-,-,observed,1") {
		t.Errorf("the connection is not in the report:\n%s", report)
	}
	if secret != "from-the-agent" {
		t.Errorf("the secret volume holds %q", secret)
	}
}
