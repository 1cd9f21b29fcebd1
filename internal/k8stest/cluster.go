package k8stest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/pki"
)

// Version is the Kubernetes release .ci/build-k8s.sh builds.
const Version = "v1.37.2"

// Timeouts of Start.
const (
	etcdReadyTimeout      = 60 * time.Second
	apiserverReadyTimeout = 120 * time.Second
	stopTimeout           = 10 * time.Second
)

// BinDir is where the binaries are looked for: $BULWARK_K8S_DIR, else
// $HOME/.cache/bulwark/k8s-<Version>.
func BinDir() string {
	if d := os.Getenv("BULWARK_K8S_DIR"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "bulwark", "k8s-"+Version)
}

// Cluster is a running etcd + kube-apiserver.
type Cluster struct {
	// Server is the API server's URL, https://127.0.0.1:PORT.
	Server string
	// Kubeconfig is the path of a kubeconfig for Server with an admin
	// client certificate (group system:masters).
	Kubeconfig string
	// CAPEM is the CA of the apiserver serving and client certificates.
	CAPEM []byte
	// ReadyAfter is how long the apiserver took to answer /readyz.
	ReadyAfter time.Duration

	t       testing.TB
	bin     string
	dir     string
	procs   []*proc
	adminTL *tls.Config
}

// requireBinaries returns BinDir when kube-apiserver, etcd and kubectl
// are there, and otherwise skips t (or fails it under
// BULWARK_REQUIRE_K8S=1).
func requireBinaries(t testing.TB) string {
	t.Helper()
	dir := BinDir()
	var missing []string
	for _, b := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) == 0 {
		return dir
	}
	msg := fmt.Sprintf("Kubernetes binaries missing in %s (%s): build them with `bash .ci/build-k8s.sh` (or set BULWARK_K8S_DIR)", dir, strings.Join(missing, ", "))
	if os.Getenv("BULWARK_REQUIRE_K8S") == "1" {
		t.Fatal(msg + "; BULWARK_REQUIRE_K8S=1 makes this a failure")
	}
	t.Skip(msg)
	return ""
}

// Start runs etcd and kube-apiserver for t, waits until the apiserver is
// ready and stops both (whole process groups) when t ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin := requireBinaries(t)
	root := t.TempDir()
	c := &Cluster{t: t, bin: bin}
	t.Cleanup(c.stop)
	// The free ports are free when picked, not when bound: another
	// process may take one in between. Then start afresh on other ports.
	for attempt := 1; ; attempt++ {
		c.dir = filepath.Join(root, fmt.Sprintf("run%d", attempt))
		if err := os.MkdirAll(c.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		err := c.start()
		if err == nil {
			return c
		}
		if attempt < 3 && strings.Contains(err.Error(), "address already in use") {
			t.Logf("starting Kubernetes (attempt %d): a port was taken; retrying", attempt)
			c.stop()
			c.procs = nil
			continue
		}
		t.Fatalf("starting Kubernetes: %v", err)
	}
}

func (c *Cluster) start() error {
	ca, err := pki.NewCA("bulwark-test-ca", 24*time.Hour)
	if err != nil {
		return err
	}
	c.CAPEM = ca.CertPEM
	serving, err := ca.Issue(pki.Request{
		CommonName: "kube-apiserver",
		DNSNames:   []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 0, 0, 1)},
		Server:     true,
		ValidFor:   24 * time.Hour,
	})
	if err != nil {
		return err
	}
	admin, err := ca.Issue(pki.Request{CommonName: "admin", Organization: []string{"system:masters"}, Client: true, ValidFor: 24 * time.Hour})
	if err != nil {
		return err
	}
	saPriv, saPub, err := pki.KeyPair()
	if err != nil {
		return err
	}
	pkiDir := filepath.Join(c.dir, "pki")
	files := map[string][]byte{
		"ca.crt": ca.CertPEM, "apiserver.crt": serving.CertPEM, "apiserver.key": serving.KeyPEM,
		"admin.crt": admin.CertPEM, "admin.key": admin.KeyPEM, "sa.key": saPriv, "sa.pub": saPub,
	}
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(pkiDir, name), b, 0o600); err != nil {
			return err
		}
	}
	adminPair, err := tls.X509KeyPair(admin.CertPEM, admin.KeyPEM)
	if err != nil {
		return fmt.Errorf("loading admin certificate: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	c.adminTL = &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{adminPair}}

	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdClient := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	etcdPeer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	etcd, err := c.launch("etcd",
		"--name=default",
		"--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+etcdClient,
		"--advertise-client-urls="+etcdClient,
		"--listen-peer-urls="+etcdPeer,
		"--initial-advertise-peer-urls="+etcdPeer,
		"--initial-cluster=default="+etcdPeer,
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	if err != nil {
		return err
	}
	if err := waitHTTP(http.DefaultClient, etcdClient+"/health", etcdReadyTimeout, etcd); err != nil {
		return fmt.Errorf("etcd: %w\n%s", err, etcd.logTail())
	}

	started := time.Now()
	c.Server = fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	api, err := c.launch("kube-apiserver",
		"--etcd-servers="+etcdClient,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", ports[2]),
		"--cert-dir="+filepath.Join(c.dir, "apiserver"),
		"--tls-cert-file="+filepath.Join(pkiDir, "apiserver.crt"),
		"--tls-private-key-file="+filepath.Join(pkiDir, "apiserver.key"),
		"--client-ca-file="+filepath.Join(pkiDir, "ca.crt"),
		"--service-account-key-file="+filepath.Join(pkiDir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(pkiDir, "sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=Node,RBAC",
		"--endpoint-reconciler-type=none",
		"--disable-admission-plugins=ServiceAccount",
		"--allow-privileged=true",
		"--profiling=false",
	)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: c.adminTL}, Timeout: 5 * time.Second}
	if err := waitHTTP(client, c.Server+"/readyz", apiserverReadyTimeout, api); err != nil {
		return fmt.Errorf("kube-apiserver: %w\n%s", err, api.logTail())
	}
	c.ReadyAfter = time.Since(started)
	c.Kubeconfig = filepath.Join(c.dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig(c.Server, ca.CertPEM, admin), 0o600); err != nil {
		return err
	}
	return nil
}

// Dir is the cluster's working directory (certificates, data, logs).
func (c *Cluster) Dir() string { return c.dir }

// Logs returns the last lines of the apiserver's log, for failure
// messages.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, p := range c.procs {
		b.WriteString(p.logTail())
	}
	return b.String()
}

func (c *Cluster) stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		if err := c.procs[i].stop(); err != nil {
			c.t.Errorf("stopping %s: %v", c.procs[i].name, err)
		}
	}
}

// proc is a started binary in its own process group.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // of Wait, set before done closes
}

func (c *Cluster) launch(name string, args ...string) (*proc, error) {
	return c.launchPath(filepath.Join(c.bin, name), name, args...)
}

// launchPath starts the binary at path, logging to name.log.
func (c *Cluster) launchPath(path, name string, args ...string) (*proc, error) {
	logPath := filepath.Join(c.dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close() // the child holds its own descriptor
	cmd := exec.Command(path, args...)
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = lf, lf
	// Own process group, killed as a whole; and killed with the test
	// binary should it die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	// Pdeathsig fires when the starting OS thread exits, not the process:
	// start from a locked thread that lives until the child does.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c.procs = append(c.procs, p)
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after
// stopTimeout, and waits for the process.
func (p *proc) stop() error {
	if p.exited() {
		return nil
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			return fmt.Errorf("pid %d survived SIGKILL", pgid)
		}
	}
	// Anything else left in the group (there should be nothing).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return nil
}

func (p *proc) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return fmt.Sprintf("--- last lines of %s ---\n%s\n", filepath.Base(p.log), strings.Join(lines, "\n"))
}

// waitHTTP polls url until it answers 200, p exits or within passes.
func waitHTTP(client *http.Client, url string, within time.Duration, p *proc) error {
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("exited before ready: %v", p.err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			var body bytes.Buffer
			body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				cancel()
				return nil
			}
			err = fmt.Errorf("%s: %s: %s", url, resp.Status, lastLine(body.String()))
		}
		cancel()
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %v", within, last)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// freePorts returns n distinct free TCP ports of 127.0.0.1 (free when
// asked; the binaries bind them right after).
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
