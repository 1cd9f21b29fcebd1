package netflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/google/go-containerregistry/pkg/name"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/containerdtest"
	"github.com/bulwark-sec/bulwark/internal/governance"
	"github.com/bulwark-sec/bulwark/internal/netflow"
	"github.com/bulwark-sec/bulwark/internal/pgtest"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
)

func TestParseTable(t *testing.T) {
	tbl := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   104        0 1548 1 0 100 0 0 10 0
   1: 0100007F:B18F 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0        0 374016 2 0 20 4 30 10 -1
   2: 0100007F:1538 0100007F:B18F 01 00000000:00000000 00:00000000 00000000   104        0 374017 1 0 20 4 30 10 -1
`
	conns, ls, err := netflow.ParseTable([]byte(tbl))
	if err != nil || len(conns) != 2 || len(ls) != 1 || ls[0] != 5432 {
		t.Fatalf("%v %v %v", conns, ls, err)
	}
	if conns[0].Remote.String() != "127.0.0.1:5432" || conns[0].Local.String() != "127.0.0.1:45455" || conns[0].Inode != 374016 {
		t.Fatalf("conn = %+v", conns[0])
	}
	v6 := "header\n 0: 00000000000000000000000001000000:1F90 0000000000000000FFFF00000100007F:D431 01 0 0 0 0 0 99 1 0\n"
	conns, _, err = netflow.ParseTable([]byte(v6))
	if err != nil || conns[0].Local.String() != "[::1]:8080" || conns[0].Remote.String() != "127.0.0.1:54321" {
		t.Fatalf("v6: %+v %v", conns, err)
	}
	for _, bad := range []string{"h\n0: zz:0 0:0 01 a b c d e 1\n", "h\n0: 0100007F 0:0 01 a b c d e 1\n", "h\n 0: short\n"} {
		if _, _, err := netflow.ParseTable([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseTable(f *testing.F) {
	f.Add([]byte("h\n 1: 0100007F:B18F 0100007F:1538 01 00000000:00000000 00:00000000 00000000 0 0 374016 2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		conns, _, err := netflow.ParseTable(b)
		if err == nil {
			for _, c := range conns {
				if !c.Remote.IsValid() {
					t.Fatalf("invalid remote in %+v", c)
				}
			}
		}
	})
}

// TestOutboundOfThisProcess: a connection this process opens to a real
// listener is seen as outbound, the accepted side is not.
func TestOutboundOfThisProcess(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conns, err := netflow.Outbound("", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, cn := range conns {
		if cn.Remote.String() == ln.Addr().String() {
			n++
		}
		if cn.Local.String() == ln.Addr().String() {
			t.Errorf("the accepted side counted as outbound: %+v", cn)
		}
	}
	if n != 1 {
		t.Fatalf("outbound to %s: %d in %+v", ln.Addr(), n, conns)
	}
}

// TestConnectionsToPostgreSQLInTheReport: real containers connect to a
// real PostgreSQL labelled pii-eu; the agent-side tracker sees the
// connections from the kernel's socket tables and reports them; the
// governance report shows the granted service's access and the ungranted
// one's, which raises an alert.
func TestConnectionsToPostgreSQLInTheReport(t *testing.T) {
	dsn := pgtest.Start(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pg := u.Host // 127.0.0.1:PORT
	c, _ := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), "bulwark-netflow")
	bin := containerdtest.BuildStatic(t, "./testdata/dial")
	imgs := map[string]client.Image{
		"checkout":  containerdtest.Import(t, ctx, c, containerdtest.Image(t, map[string][]byte{"bin/dial": bin, "variant": []byte("checkout")}), "registry.example/checkout:1"),
		"analytics": containerdtest.Import(t, ctx, c, containerdtest.Image(t, map[string][]byte{"bin/dial": bin, "variant": []byte("analytics")}), "registry.example/analytics:1"),
	}
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalogue.yaml")
	os.WriteFile(cat, []byte(`classes: [{name: pii-eu}]
regulations: [{name: gdpr, classes: [pii-eu], regions: [eu-west-1]}]
stores: [{name: customers-db, address: '`+pg+`', classes: [pii-eu]}]
applications: [{name: checkout, classes: [pii-eu]}]
nodes: {node-eu: eu-west-1}
`), 0o600)
	var seed []servertest.Image
	for repo, ci := range imgs {
		d, _ := name.NewDigest("registry.example/" + repo + "@" + ci.Target().Digest.String())
		seed = append(seed, servertest.Image{Digest: d, Tag: "1", Certified: true})
	}
	srv := servertest.Start(t, server.Config{WatchInterval: time.Hour, APILimits: api.Limits{Rate: -1},
		Secrets: server.SecretsConfig{Catalogue: cat}}, seed...)
	// checkout is an application granted pii-eu; analytics' image has no owner.
	if code, b := srv.Call(t, srv.Admin, "POST", "/api/v1/applications", map[string]any{"name": "checkout",
		"repositories": []string{"registry.example/checkout"}}); code != 201 {
		t.Fatalf("application: %d %s", code, b)
	}

	tasks := map[string]client.Task{}
	for app, ci := range imgs {
		tasks[app] = containerdtest.Run(t, ctx, c, ci, "dial-"+app, oci.WithProcessArgs("/bin/dial", pg), oci.WithHostNamespace(specs.NetworkNamespace))
	}
	var tr netflow.Tracker
	batch := agentproto.FlowBatch{Node: "node-eu"}
	for end := time.Now().Add(45 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for app, task := range tasks {
			ps, err := task.Pids(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var pids []int
			for _, p := range ps {
				pids = append(pids, int(p.Pid))
			}
			if err := tr.Observe("dial-"+app, imgs[app].Target().Digest.String(), pids, time.Now()); err != nil {
				t.Logf("observe: %v", err)
			}
		}
		// Each Batch takes what was seen since the last one, as the
		// agent's heartbeats do: the two containers' connections can fall
		// in different batches (it failed whenever they did, under load).
		batch.Flows = append(batch.Flows, tr.Batch("node-eu", time.Now()).Flows...)
		if len(batch.Flows) >= 2 {
			break
		}
	}
	if len(batch.Flows) != 2 {
		for app, task := range tasks { // what the processes were doing
			ps, _ := task.Pids(ctx)
			for _, p := range ps {
				stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid))
				conns, err := netflow.Outbound("", int(p.Pid))
				t.Logf("%s pid %d: stat %q, outbound %+v, %v", app, p.Pid, stat, conns, err)
			}
		}
		t.Fatalf("flows seen: %+v", batch)
	}
	for _, f := range batch.Flows {
		if f.Destination != pg || f.Count != 1 {
			t.Fatalf("flow %+v, want one connection to %s", f, pg)
		}
	}
	code, b := srv.Call(t, srv.Admin, "POST", "/api/v1/governance/flows", batch)
	var rec governance.Recorded
	json.Unmarshal([]byte(b), &rec)
	if code != 200 || rec.Matched != 2 || rec.Alerts != 1 || rec.Violations[0].Service != "" || rec.Violations[0].Container != "dial-analytics" {
		t.Fatalf("recorded: %d %s", code, b)
	}
	code, b = srv.Call(t, srv.Viewer, "GET", "/api/v1/governance/report?regulation=gdpr", nil)
	var rep governance.Report
	json.Unmarshal([]byte(b), &rep)
	if code != 200 || len(rep.Sections) != 1 || len(rep.Sections[0].Observed) != 2 || len(rep.Violations) != 1 {
		t.Fatalf("report: %d %s", code, b)
	}
	got := map[string]bool{}
	for _, a := range rep.Sections[0].Observed {
		got[a.Service+"/"+a.Region+"/"+a.Store] = a.Granted
	}
	if !got["checkout/eu-west-1/customers-db"] || got["/eu-west-1/customers-db"] {
		t.Fatalf("observed access: %v", got)
	}
	if _, log := srv.Call(t, srv.Admin, "GET", "/api/v1/audit?limit=500", nil); !strings.Contains(log, "governance.violation") {
		t.Fatal("no governance.violation in the audit log")
	}
}

func TestProcs(t *testing.T) {
	proc, cg := t.TempDir(), t.TempDir()
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(s), 0o644)
	}
	write(filepath.Join(proc, "10", "cgroup"), "9:pids:/ctr/abc\n0::/ctr/abc\n")
	write(filepath.Join(cg, "unified", "ctr", "abc", "cgroup.procs"), "10\n11\n12\n")
	if got := netflow.Procs(proc, cg, 10); len(got) != 3 || got[2] != 12 {
		t.Fatalf("hybrid: %v", got)
	}
	write(filepath.Join(proc, "20", "cgroup"), "0::/\n8:pids:/\n")
	write(filepath.Join(cg, "cgroup.procs"), "1\n2\n20\n")
	if got := netflow.Procs(proc, cg, 20); len(got) != 1 || got[0] != 20 {
		t.Fatalf("a process in the root cgroup: %v, want itself only", got)
	}
	write(filepath.Join(proc, "30", "cgroup"), "0::/../../etc\n")
	if got := netflow.Procs(proc, cg, 30); len(got) != 1 {
		t.Fatalf("a climbing path: %v", got)
	}
}
