package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/failpoint"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/vulndb"
)

// The crash tests run the server as a child process (this test binary,
// re-executed with childEnv set), let a failpoint SIGKILL it mid-work,
// restart it without one, and check what the database holds: nothing lost,
// nothing done twice, the interrupted work completed.

const childEnv = "BULWARK_TEST_CHILD_SERVER"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(runChild(cfg))
	}
	os.Exit(m.Run())
}

// childConfig is what the parent passes to a child server.
type childConfig struct {
	DataDir          string
	AdvisorySources  []string
	AdvisoryInterval time.Duration
	Policy           string
	ResponsePolicy   string
	Kubeconfig       string
}

// runChild runs a server until SIGTERM, writing its address to
// DataDir/addr once it listens.
func runChild(raw string) int {
	var c childConfig
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	err := Run(ctx, Config{
		DataDir: c.DataDir, Listen: "127.0.0.1:0", Workers: 2, PollInterval: 20 * time.Millisecond,
		AllowPrivate: []string{"127.0.0.1"}, ShutdownTimeout: DefaultShutdownTimeout, // the test registry is on loopback
		AdvisorySources: c.AdvisorySources, AdvisoryInterval: c.AdvisoryInterval, Policy: c.Policy,
		ResponsePolicy: c.ResponsePolicy, Kubeconfig: c.Kubeconfig,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Ready: func(a net.Addr) {
			os.WriteFile(filepath.Join(c.DataDir, "addr.tmp"), []byte(a.String()), 0o600)
			os.Rename(filepath.Join(c.DataDir, "addr.tmp"), filepath.Join(c.DataDir, "addr"))
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// child is a running child server.
type child struct {
	cmd  *exec.Cmd
	done chan error
}

// startChild starts a child server on cfg with the failpoint fp armed
// ("" for none).
func startChild(t *testing.T, cfg childConfig, fp string) *child {
	t.Helper()
	raw, _ := json.Marshal(cfg)
	os.Remove(filepath.Join(cfg.DataDir, "addr"))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw), failpoint.Env+"="+fp)
	cmd.Stderr = t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.done
	})
	return c
}

// waitKilled waits for the child to die of SIGKILL (its failpoint).
func (c *child) waitKilled(t *testing.T) {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child server ended with %v, want killed by SIGKILL at its failpoint", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the failpoint did not kill the child server within 60 s")
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (c *child) stop(t *testing.T) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			t.Fatalf("child server after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("child server did not stop within 20 s of SIGTERM")
	}
}

// seedCertified stores n certified images of r/app whose inventory holds
// lodash 4.17.15 (vulnerable to GHSA-35jh-r3h4-6jhm, HIGH), and returns
// their digests.
func seedCertified(t *testing.T, dir string, n int) []string {
	t.Helper()
	st, err := OpenStore(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var digests []string
	for i := range n {
		d := fmt.Sprintf("sha256:%064x", i+1)
		seedLodash(t, st, d)
		digests = append(digests, d)
	}
	return digests
}

// advisoryFeed writes the lodash advisory and extra unrelated records to
// a directory source.
func advisoryFeed(t *testing.T, extra int) string {
	t.Helper()
	feed := t.TempDir()
	rec, err := os.ReadFile(filepath.Join("..", "match", "testdata", "osv", "GHSA-35jh-r3h4-6jhm.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(feed, "GHSA-35jh-r3h4-6jhm.json"), rec, 0o644)
	for i := range extra {
		id := fmt.Sprintf("GHSA-test-%04d", i)
		doc := fmt.Sprintf(`{"id":%q,"modified":"2025-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"pkg-%d"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.0"}]}]}]}`, id, i)
		os.WriteFile(filepath.Join(feed, id+".json"), []byte(doc), 0o644)
	}
	return feed
}

// crashState is what the database holds after a run.
type crashState struct {
	revoked      int            // digests whose certification is revoked
	revokeAudits map[string]int // certification.revoke entries per digest
	auditOK      bool
	events       map[string]int // outbox events (notifications to publish) per digest
	eventsDone   int            // of which published
}

func readCrashState(t *testing.T, dir string, digests []string) crashState {
	t.Helper()
	st, err := OpenStore(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := crashState{revokeAudits: map[string]int{}}
	for _, d := range digests {
		c, err := st.Certification(t.Context(), d)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status == store.Revoked {
			s.revoked++
		}
	}
	rows, err := st.DB().Query(`SELECT object FROM audit_log WHERE action = 'certification.revoke'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var o string
		rows.Scan(&o)
		s.revokeAudits[o]++
	}
	rows.Close()
	rep, err := audit.Verify(t.Context(), st.DB())
	if err != nil {
		t.Fatal(err)
	}
	s.auditOK = rep.OK
	s.events = map[string]int{}
	rows, err = st.DB().Query(`SELECT payload, state FROM jobs WHERE kind = ?`, store.JobCertificationEvent)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var (
			payload []byte
			state   string
			ev      store.CertificationEvent
		)
		rows.Scan(&payload, &state)
		json.Unmarshal(payload, &ev)
		s.events[ev.Digest]++
		if state == store.JobDone {
			s.eventsDone++
		}
	}
	rows.Close()
	return s
}

// restartRevokesAll restarts the server without a failpoint, waits until
// every digest is revoked, stops it, and fails unless each digest has
// exactly one certification.revoke entry and the audit chain verifies.
func restartRevokesAll(t *testing.T, cfg childConfig, digests []string) {
	t.Helper()
	c := startChild(t, cfg, "")
	deadline := time.Now().Add(60 * time.Second)
	var s crashState
	for {
		s = readCrashState(t, cfg.DataDir, digests)
		if s.revoked == len(digests) && s.eventsDone == len(digests) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d revoked, %d events published after 60 s", s.revoked, len(digests), s.eventsDone)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.stop(t)
	for _, d := range digests {
		if s.revokeAudits[d] != 1 {
			t.Errorf("%s has %d certification.revoke entries, want 1", d, s.revokeAudits[d])
		}
	}
	if len(s.revokeAudits) != len(digests) || !s.auditOK {
		t.Errorf("revoke entries for %d digests, audit chain ok %v", len(s.revokeAudits), s.auditOK)
	}
	// Every revocation's notification survived the crash: one outbox
	// event per digest, published.
	for _, d := range digests {
		if s.events[d] != 1 {
			t.Errorf("%s has %d outbox events, want 1", d, s.events[d])
		}
	}
}

// kill -9 during a re-evaluation: the revocations written before the kill
// stay (each with its audit entry, same transaction); on restart the
// change log, whose cursor never moved, is re-evaluated and the rest are
// revoked, none twice.
func TestCrashDuringReevaluation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	dir := t.TempDir()
	const n = 300
	digests := seedCertified(t, dir, n)
	cfg := childConfig{DataDir: dir, AdvisorySources: []string{"npm=" + advisoryFeed(t, 0)}, AdvisoryInterval: time.Hour}

	startChild(t, cfg, "reeval.revoked:5").waitKilled(t)
	mid := readCrashState(t, dir, digests)
	if mid.revoked < 5 || mid.revoked >= n || !mid.auditOK {
		t.Fatalf("after the kill: %d of %d revoked, audit ok %v; want 5 <= revoked < %d", mid.revoked, n, mid.auditOK, n)
	}
	if got, events := len(mid.revokeAudits), len(mid.events); got != mid.revoked || events != mid.revoked {
		t.Errorf("after the kill: %d revoked, %d audited, %d outbox events: the revocation, its entry and its event are not atomic", mid.revoked, got, events)
	}

	restartRevokesAll(t, cfg, digests)
	t.Logf("killed after %d of %d revocations; restart revoked the remaining %d", mid.revoked, n, n-mid.revoked)
}

// kill -9 during a database update: the import's transaction rolls back
// (no record, no change-log entry, no revocation); the restart imports
// again and re-evaluates.
func TestCrashDuringAdvisoryUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	dir := t.TempDir()
	const n = 10
	digests := seedCertified(t, dir, n)
	cfg := childConfig{DataDir: dir, AdvisorySources: []string{"npm=" + advisoryFeed(t, 30)}, AdvisoryInterval: time.Hour}

	startChild(t, cfg, "vulndb.import.write:10").waitKilled(t)
	adb, err := vulndb.Open(filepath.Join(dir, "osv.db"))
	if err != nil {
		t.Fatal(err)
	}
	status, err := adb.Status(t.Context())
	adb.Close()
	if err != nil {
		t.Fatal(err)
	}
	if status.Records != 0 {
		t.Errorf("after a kill mid-import the advisory database holds %d records, want 0 (rolled back)", status.Records)
	}
	if mid := readCrashState(t, dir, digests); mid.revoked != 0 || len(mid.revokeAudits) != 0 {
		t.Errorf("after a kill mid-import: %d revoked", mid.revoked)
	}

	restartRevokesAll(t, cfg, digests)
	adb, _ = vulndb.Open(filepath.Join(dir, "osv.db"))
	status, _ = adb.Status(t.Context())
	adb.Close()
	if status.Records != 31 {
		t.Errorf("after the restart the advisory database holds %d records, want 31", status.Records)
	}
}

// kill -9 during a scan job: on restart the job (still marked running) is
// requeued at once and completes; the image is stored once.
func TestCrashDuringScan(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	reg := registryWithImage(t)
	dir := t.TempDir()
	st, err := OpenStore(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]string{"image": reg})
	id, err := st.EnqueueJob(t.Context(), "scan", payload, time.Time{})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	cfg := childConfig{DataDir: dir}
	startChild(t, cfg, "scan.stored").waitKilled(t)

	c := startChild(t, cfg, "")
	deadline := time.Now().Add(30 * time.Second)
	var j *store.Job
	for {
		st, err := OpenStore(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		j, err = st.Job(t.Context(), id)
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		if j.State == store.JobDone || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.stop(t)
	if j.State != store.JobDone || j.Attempts != 2 {
		t.Errorf("job after the restart: %s after %d attempts (%s), want done after 2", j.State, j.Attempts, j.Error)
	}
	st, _ = OpenStore(t.Context(), dir)
	defer st.Close()
	var images int
	st.DB().QueryRow(`SELECT COUNT(*) FROM images`).Scan(&images)
	if images != 1 {
		t.Errorf("%d images stored, want 1", images)
	}
}

// registryWithImage pushes a test image to an in-process registry and
// returns its reference.
func registryWithImage(t *testing.T) string {
	t.Helper()
	reg := registrytest.New(t)
	img, _ := variantImage(t, "crash")
	return reg.Push(t, "team/app:1", img).String()
}
