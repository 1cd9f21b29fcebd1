package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
	svidv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/svid/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/pgtest"
)

// TestSPIREPeer measures SPIRE v1.13.3 on this machine for the same (a)
// and (b) as the bench: a registration entry created -> the first
// X.509-SVID on a watching go-spiffe client's stream; the entry deleted ->
// the identity leaves the stream. The binaries are built outside the
// repository (bench/identity/README in docs/benchmarks.md); the test runs
// only when BULWARK_SPIRE_BIN names their directory, never in CI.
// SPIRE's datastore is PostgreSQL (pgtest): the binaries are built
// without cgo, which its SQLite driver needs.
func TestSPIREPeer(t *testing.T) {
	bin := os.Getenv("BULWARK_SPIRE_BIN")
	if bin == "" {
		t.Skip("BULWARK_SPIRE_BIN is not set (a bench peer, not a test)")
	}
	dsn := pgtest.Start(t)
	dir, err := os.MkdirTemp("", "bwspire")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	srvSock, agentSock := filepath.Join(dir, "server.sock"), filepath.Join(dir, "agent.sock")
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	serverConf := write("server.conf", fmt.Sprintf(`server {
  bind_address = "127.0.0.1"
  bind_port = "18481"
  socket_path = %q
  trust_domain = "bench.example"
  data_dir = %q
  log_level = "WARN"
}
plugins {
  DataStore "sql" { plugin_data { database_type = "postgres" connection_string = %q } }
  NodeAttestor "join_token" { plugin_data {} }
  KeyManager "memory" { plugin_data {} }
}
`, srvSock, filepath.Join(dir, "server"), dsn))
	agentConf := write("agent.conf", fmt.Sprintf(`agent {
  data_dir = %q
  log_level = "WARN"
  server_address = "127.0.0.1"
  server_port = "18481"
  socket_path = %q
  trust_domain = "bench.example"
  insecure_bootstrap = true
}
plugins {
  NodeAttestor "join_token" { plugin_data {} }
  KeyManager "memory" { plugin_data {} }
  WorkloadAttestor "unix" { plugin_data {} }
}
`, filepath.Join(dir, "agent"), agentSock))
	daemon := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		logf, _ := os.Create(filepath.Join(dir, name+".log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
		return cmd
	}
	cli := func(args ...string) string {
		out, err := exec.Command(filepath.Join(bin, "spire-server"), append(args, "-socketPath", srvSock)...).CombinedOutput()
		if err != nil {
			t.Fatalf("spire-server %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	waitHealthy := func(name, sock string) {
		deadline := time.Now().Add(60 * time.Second)
		for exec.Command(filepath.Join(bin, name), "healthcheck", "-socketPath", sock).Run() != nil {
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(dir, name+".log"))
				t.Fatalf("%s not healthy in 60 s:\n%s", name, log)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	server := daemon("spire-server", "run", "-config", serverConf)
	waitHealthy("spire-server", srvSock)
	token := regexp.MustCompile(`Token: (\S+)`).FindStringSubmatch(cli("token", "generate", "-spiffeID", "spiffe://bench.example/node"))
	if token == nil {
		t.Fatal("no join token")
	}
	daemon("spire-agent", "run", "-config", agentConf, "-joinToken", token[1])
	waitHealthy("spire-agent", agentSock)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := workloadapi.New(ctx, workloadapi.WithAddr("unix://"+agentSock), workloadapi.WithBackoffStrategy(fastRetry{}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ev := make(watcher, 4096)
	go c.WatchX509Context(ctx, ev)
	eventTimeout = time.Minute
	rounds := 5
	var first, gone []time.Duration
	entryID := regexp.MustCompile(`Entry ID\s*:\s*(\S+)`)
	for i := range rounds {
		t0 := time.Now()
		m := entryID.FindStringSubmatch(cli("entry", "create", "-parentID", "spiffe://bench.example/node",
			"-spiffeID", fmt.Sprintf("spiffe://bench.example/w%d", i), "-selector", fmt.Sprintf("unix:uid:%d", os.Getuid())))
		if m == nil {
			t.Fatal("no entry id")
		}
		d, err := ev.next(true, t0)
		if err != nil {
			t.Fatalf("round %d: entry created, no SVID: %v", i, err)
		}
		first = append(first, d)
		t1 := time.Now()
		cli("entry", "delete", "-entryID", m[1])
		d, err = ev.next(false, t1)
		if err != nil {
			t.Fatalf("round %d: entry deleted, identity still on the stream: %v", i, err)
		}
		gone = append(gone, d)
	}
	t.Logf("SPIRE (a) entry created -> first SVID on the stream: %s", summary(first))
	t.Logf("SPIRE (b) entry deleted -> identity leaves the stream: %s", summary(gone))
	spireSigning(t, srvSock, server.Process.Pid)
}

// spireSigning is (c) for SPIRE: MintX509SVID on the server's local admin
// socket (no datastore write, no audit), 16 callers for 5 s; the server
// process's CPU per SVID is read from /proc.
func spireSigning(t *testing.T, sock string, pid int) {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := svidv1.NewSVIDClient(conn)
	key, _ := identity.NewKey()
	u, _ := url.Parse("spiffe://bench.example/minted")
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		t.Fatal(err)
	}
	cpu0 := procCPU(pid)
	d := 5 * time.Second
	n := parallel(16, d, func() error {
		_, err := c.MintX509SVID(context.Background(), &svidv1.MintX509SVIDRequest{Csr: csr, Ttl: 3600})
		return err
	})
	per := (procCPU(pid) - cpu0) / time.Duration(max(n, 1))
	t.Logf("SPIRE (c) MintX509SVID: %.0f SVIDs/s wall; %.0f us of spire-server CPU each -> %.0f/s on 2 idle cores; load average %s",
		float64(n)/d.Seconds(), per.Seconds()*1e6, 2/per.Seconds(), loadAvg())
}
