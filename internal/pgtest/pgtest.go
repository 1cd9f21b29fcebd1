// Package pgtest starts a real, throwaway PostgreSQL server for tests, from
// the binaries of Debian's postgresql package (/usr/lib/postgresql/N/bin).
//
//	dsn := pgtest.Start(t) // postgres://postgres@127.0.0.1:PORT/t_<random>?sslmode=disable
//
// One server is started lazily per test binary (the first Start) and shared
// by every test; each Start creates a fresh database that its t.Cleanup
// drops. The server runs as the postgres user when the tests run as root,
// keeps its data and unix socket in a private temporary directory, listens
// on 127.0.0.1 only, on a free port, with fsync off; it stops when the test
// binary exits (parent-death signal), and the next test binary removes the
// directories its dead predecessors left.
//
// When PostgreSQL is not installed Start skips the test, unless
// BULWARK_REQUIRE_POSTGRES=1, in which case it fails it (CI sets it so the
// PostgreSQL tests cannot silently stop running). BULWARK_POSTGRES_BINDIR
// names the directory of initdb and postgres when they are elsewhere.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// dirPrefix names the temporary directories of the servers, so a later run
// can find and remove those whose test binary is gone.
const dirPrefix = "bulwark-pgtest-"

var (
	once   sync.Once
	srv    *server
	srvErr error
)

type server struct {
	dir  string
	port int
	cmd  *exec.Cmd
	// admin is a connection pool to the postgres database, for CREATE and
	// DROP DATABASE.
	admin *sql.DB
}

func (s *server) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// errNotInstalled is returned when no PostgreSQL binaries are found.
var errNotInstalled = errors.New("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; apt-get install postgresql)")

// Start returns the DSN of a new, empty database on the shared test server,
// starting the server first if this is the binary's first call. The database
// is dropped when t ends.
func Start(t testing.TB) string {
	t.Helper()
	once.Do(func() { srv, srvErr = start() })
	if errors.Is(srvErr, errNotInstalled) {
		if os.Getenv("BULWARK_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("BULWARK_REQUIRE_POSTGRES=1 but %v", srvErr)
		}
		t.Skipf("skipping: %v; set BULWARK_REQUIRE_POSTGRES=1 to make this a failure", srvErr)
	}
	if srvErr != nil {
		t.Fatalf("starting the test PostgreSQL: %v", srvErr)
	}
	var b [8]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	if _, err := srv.admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		// FORCE ends the connections a test left open.
		if _, err := srv.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping test database %s: %v", name, err)
		}
	})
	return srv.dsn(name)
}

// binDir finds the directory of initdb and postgres: BULWARK_POSTGRES_BINDIR,
// else the newest /usr/lib/postgresql/N/bin.
func binDir() (string, error) {
	if d := os.Getenv("BULWARK_POSTGRES_BINDIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("%w: BULWARK_POSTGRES_BINDIR=%s has no initdb", errNotInstalled, d)
		}
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", errNotInstalled
	}
	version := func(p string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return n
	}
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
	return filepath.Dir(matches[0]), nil
}

// credential is who the server runs as: the postgres user when we are root
// (PostgreSQL refuses to run as root), else ourselves (nil).
func credential() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, -1, -1, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("running as root and no postgres user to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}

func start() (*server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, uid, gid, err := credential()
	if err != nil {
		return nil, err
	}
	base := baseDir(cred != nil)
	removeStale(base)
	dir, err := os.MkdirTemp(base, dirPrefix)
	if err != nil {
		return nil, err
	}
	// The owner file names this test binary, so a later run knows when the
	// directory is abandoned.
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	var lastErr error
	for range 3 { // the free port can be taken between choosing and binding it
		s, err := run(bin, dir, cred)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// run starts postgres on a free port of 127.0.0.1 and waits until it
// accepts connections.
func run(bin, dir string, cred *syscall.Credential) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"),
		"-D", filepath.Join(dir, "data"),
		"-h", "127.0.0.1", // TCP on loopback only
		"-p", strconv.Itoa(port),
		"-k", dir, // unix socket in the private directory
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=300",
		"-c", "log_min_messages=warning",
	)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// SIGINT (fast shutdown) when the test binary exits, however it exits.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGINT}
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked exits; keep it alive
		// as long as the server runs.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
		logf.Close()
	}()
	if err := <-started; err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting postgres: %w", err)
	}
	s := &server{dir: dir, port: port, cmd: cmd}
	admin, err := sql.Open("pgx", s.dsn("postgres"))
	if err != nil {
		cmd.Process.Kill()
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = admin.PingContext(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case werr := <-exited:
			admin.Close()
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("postgres exited: %v\n%s", werr, tail(string(log)))
		default:
		}
		if time.Now().After(deadline) {
			admin.Close()
			cmd.Process.Kill()
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("postgres not ready after 60 s: %v\n%s", err, tail(string(log)))
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.admin = admin
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// baseDir is where the server directory goes: os.TempDir(), unless the
// server runs as another user (we are root) and cannot traverse its path
// (TMPDIR under /root, say); then /tmp.
func baseDir(otherUser bool) string {
	base := os.TempDir()
	if !otherUser {
		return base
	}
	for d := base; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if d == filepath.Dir(d) {
			return base
		}
	}
}

// removeStale deletes the server directories under base of test binaries
// that have exited (their servers stopped with them).
func removeStale(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, dirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == nil {
			continue // still running
		}
		if _, err := os.Stat(filepath.Join(d, "data", "postmaster.pid")); err == nil {
			continue // the server has not finished shutting down
		}
		os.RemoveAll(d)
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}
