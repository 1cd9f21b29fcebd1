package workloadapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// callerCreds are transport credentials that read who connected: the
// peer's pid from SO_PEERCRED and a pidfd on it, taken while the process
// is known to be the one that connected.
type callerCreds struct{}

// Caller is the process at the other end of a connection.
type Caller struct {
	PID, UID int
	pidfd    int // -1 when pidfds are unsupported
}

func (Caller) AuthType() string { return "bulwark-peercred" }

// Alive says whether the process that connected still runs (its pid has
// not been reused by another process since).
func (c Caller) Alive() bool {
	if c.pidfd < 0 {
		return unix.Kill(c.PID, 0) == nil
	}
	return unix.PidfdSendSignal(c.pidfd, 0, nil, 0) == nil
}

func (callerCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	uc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, nil, fmt.Errorf("the Workload API serves unix sockets only, not %T", conn)
	}
	cred, err := peerCred(uc)
	if err != nil {
		return nil, nil, err
	}
	if cred.Pid <= 0 {
		return nil, nil, errors.New("the peer has no pid in this pid namespace")
	}
	c := Caller{PID: int(cred.Pid), UID: int(cred.Uid), pidfd: -1}
	if fd, err := unix.PidfdOpen(c.PID, 0); err == nil {
		c.pidfd = fd
	} else if !errors.Is(err, unix.ENOSYS) {
		return nil, nil, fmt.Errorf("opening a pidfd on the peer %d: %w", c.PID, err)
	}
	return &pidfdConn{Conn: conn, fd: c.pidfd}, c, nil
}

// pidfdConn closes the caller's pidfd with the connection.
type pidfdConn struct {
	net.Conn
	fd   int
	once sync.Once
}

func (c *pidfdConn) Close() error {
	c.once.Do(func() {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
	})
	return c.Conn.Close()
}

func (callerCreds) ClientHandshake(ctx context.Context, _ string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("the Workload API's credentials are server side only")
}
func (callerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "bulwark-peercred"}
}
func (c callerCreds) Clone() credentials.TransportCredentials { return c }
func (callerCreds) OverrideServerName(string) error           { return nil }

// callerOf returns the caller of an RPC.
func callerOf(ctx context.Context) (Caller, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Caller{}, false
	}
	c, ok := p.AuthInfo.(Caller)
	return c, ok
}

// limitListener accepts at most n unix connections at once; the rest wait
// in the kernel's backlog. One caller (an attribution key: its container,
// or "" for every process in no watched container) holds at most perCaller
// of them: its next connection is closed at once, so one container that
// opens connections without end cannot take the node's from the others.
// Its connections stay *net.UnixConn underneath, so the handshake can read
// their peer credentials.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	perCaller int
	key       func(pid int) string
	log       *slog.Logger
	mu        sync.Mutex
	open      map[string]int // attribution key -> connections open
}

func newLimitListener(l net.Listener, n, perCaller int, key func(pid int) string, log *slog.Logger) *limitListener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n), perCaller: perCaller, key: key, log: log,
		open: map[string]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		l.sem <- struct{}{}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.sem
			return nil, err
		}
		uc, ok := c.(*net.UnixConn)
		if !ok {
			<-l.sem
			c.Close()
			return nil, fmt.Errorf("the Workload API serves unix sockets only, not %T", c)
		}
		key, ok := l.admit(uc)
		if !ok {
			<-l.sem
			uc.Close()
			continue
		}
		return &limitedConn{UnixConn: uc, release: func() { l.leave(key); <-l.sem }}, nil
	}
}

// admit counts uc against its caller's cap; false when the caller holds
// perCaller connections already (or its credentials cannot be read).
func (l *limitListener) admit(uc *net.UnixConn) (string, bool) {
	cred, err := peerCred(uc)
	if err != nil {
		l.log.Debug("workload API: refusing a connection", "err", err)
		return "", false
	}
	pid := int(cred.Pid)
	key := l.key(pid)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key] >= l.perCaller {
		l.log.Warn("workload API: a caller holds its connections already; refusing another", "container", key, "pid", pid, "max", l.perCaller)
		return "", false
	}
	l.open[key]++
	return key, true
}

func (l *limitListener) leave(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// peerCred reads the credentials of the process at the other end of uc
// (SO_PEERCRED: taken by the kernel at connect, not said by the peer).
func peerCred(uc syscall.Conn) (*unix.Ucred, error) {
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("reading the peer's credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return nil, fmt.Errorf("reading the peer's credentials: %w", err)
	}
	if cerr != nil {
		return nil, fmt.Errorf("reading the peer's credentials: %w", cerr)
	}
	return cred, nil
}

type limitedConn struct {
	*net.UnixConn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.UnixConn.Close()
	c.once.Do(c.release)
	return err
}
