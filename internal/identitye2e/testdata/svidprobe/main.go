// Command svidprobe runs inside the identity end-to-end test's containers:
// a workload that gets its identity the way any go-spiffe program does
// (workloadapi over the socket in /spiffe), watches its X.509-SVID stream
// and writes what it sees to /ctl/events, and answers the test's
// commands on /ctl/ctl.sock (mTLS server and client, JWT-SVIDs, a
// drifted exec).
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/status"
)

const addr = "unix:///spiffe/agent.sock"

// fastRetry retries every 100 ms (go-spiffe's default waits 1 s, 2 s, ...):
// the test measures the server and the agent, not the client's backoff.
type fastRetry struct{}

func (fastRetry) NewBackoff() workloadapi.Backoff { return fastRetry{} }
func (fastRetry) Next() time.Duration             { return 100 * time.Millisecond }
func (fastRetry) Reset()                          {}

var (
	events  *os.File
	evMu    sync.Mutex
	current spiffeid.ID
)

func logEvent(format string, args ...any) {
	evMu.Lock()
	defer evMu.Unlock()
	fmt.Fprintf(events, "%d "+format+"\n", append([]any{time.Now().UnixNano()}, args...)...)
}

type watcher struct{}

func (watcher) OnX509ContextUpdate(c *workloadapi.X509Context) {
	for _, s := range c.SVIDs {
		evMu.Lock()
		current = s.ID
		evMu.Unlock()
		logEvent("svid %s %x", s.ID, s.Certificates[0].SerialNumber)
	}
}

func (watcher) OnX509ContextWatchError(err error) {
	logEvent("error %s", status.Code(err))
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "noop" {
		return
	}
	var err error
	if events, err = os.OpenFile("/ctl/events", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	c, err := workloadapi.New(ctx, workloadapi.WithAddr(addr), workloadapi.WithBackoffStrategy(fastRetry{}))
	if err != nil {
		logEvent("fatal %v", err)
		os.Exit(1)
	}
	go c.WatchX509Context(ctx, watcher{})
	l, err := net.Listen("unix", "/ctl/ctl.sock.tmp")
	if err != nil {
		logEvent("fatal %v", err)
		os.Exit(1)
	}
	os.Rename("/ctl/ctl.sock.tmp", "/ctl/ctl.sock")
	for {
		conn, err := l.Accept()
		if err != nil {
			os.Exit(1)
		}
		go func() {
			defer conn.Close()
			line, _ := bufio.NewReader(conn).ReadString('\n')
			fmt.Fprintln(conn, do(ctx, c, strings.Fields(line)))
		}()
	}
}

func do(ctx context.Context, c *workloadapi.Client, args []string) string {
	if len(args) == 0 {
		return "err empty"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch {
	case args[0] == "jwt" && len(args) == 2:
		s, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: args[1]})
		if err != nil {
			return "err " + status.Code(err).String()
		}
		return "ok " + s.Marshal()
	case args[0] == "validate" && len(args) == 3:
		s, err := c.ValidateJWTSVID(ctx, args[1], args[2])
		if err != nil {
			return "err " + err.Error()
		}
		return "ok " + s.ID.String()
	case args[0] == "mtls-serve" && len(args) == 2:
		return serve(c, args[1])
	case args[0] == "mtls-dial" && len(args) == 2:
		return dial(ctx, c, args[1])
	case args[0] == "drift":
		return drift()
	}
	return "err unknown command"
}

func trustDomain() spiffeid.TrustDomain {
	evMu.Lock()
	defer evMu.Unlock()
	return current.TrustDomain()
}

// serve answers mTLS connections on a unix socket with the peer's
// SPIFFE ID, requiring a peer of its own trust domain.
func serve(c *workloadapi.Client, path string) string {
	src, err := workloadapi.NewX509Source(context.Background(), workloadapi.WithClient(c))
	if err != nil {
		return "err " + err.Error()
	}
	inner, err := net.Listen("unix", path)
	if err != nil {
		return "err " + err.Error()
	}
	l := tls.NewListener(inner, tlsconfig.MTLSServerConfig(src, src, tlsconfig.AuthorizeMemberOf(trustDomain())))
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				tc := conn.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					logEvent("mtls-refused %v", err)
					return
				}
				peer, err := spiffeid.FromURI(tc.ConnectionState().PeerCertificates[0].URIs[0])
				if err != nil {
					return
				}
				logEvent("mtls-peer %s", peer)
				fmt.Fprintf(conn, "hello %s\n", peer)
			}()
		}
	}()
	return "ok"
}

// dial connects over mTLS and returns the server's SPIFFE ID and answer.
func dial(ctx context.Context, c *workloadapi.Client, path string) string {
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClient(c))
	if err != nil {
		return "err " + err.Error()
	}
	defer src.Close()
	conn, err := tls.Dial("unix", path, tlsconfig.MTLSClientConfig(src, src, tlsconfig.AuthorizeMemberOf(trustDomain())))
	if err != nil {
		return "err " + err.Error()
	}
	defer conn.Close()
	peer, err := spiffeid.FromURI(conn.ConnectionState().PeerCertificates[0].URIs[0])
	if err != nil {
		return "err " + err.Error()
	}
	b, _ := io.ReadAll(conn)
	return fmt.Sprintf("ok %s %s", peer, strings.TrimSpace(string(b)))
}

// drift copies this program to /tmp and runs the copy: content that is
// in no layer of the image.
func drift() string {
	in, err := os.ReadFile("/bin/svidprobe")
	if err != nil {
		return "err " + err.Error()
	}
	if err := os.WriteFile("/tmp/drift", append(in, 0), 0o755); err != nil {
		return "err " + err.Error()
	}
	at := time.Now().UnixNano()
	if err := exec.Command("/tmp/drift", "noop").Run(); err != nil {
		return "err " + err.Error()
	}
	return fmt.Sprintf("ok %d", at)
}
