package workloadapi

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// TestOneCallerCannotTakeTheNodesConnections: a container that opens the
// node's whole connection budget (MaxConns and more) keeps only
// MaxConnsPerCaller of them, its next ones are closed, and another
// container still gets its SVID at once.
func TestOneCallerCannotTakeTheNodesConnections(t *testing.T) {
	f := start(t, cart(certified)) // this process: container c1
	sock := strings.TrimPrefix(f.addr, "unix://")
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range MaxConns + 8 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	// The server closes c1's connections past its cap.
	closed := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			closed++
		}
	}
	if want := len(conns) - MaxConnsPerCaller; closed != want {
		t.Errorf("the server closed %d of c1's %d connections, want %d", closed, len(conns), want)
	}

	// Another container (a child process attributed to c2) connects.
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFetchSVID$")
	cmd.Env = append(os.Environ(), "BULWARK_WORKLOADAPI_HELPER="+f.addr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	other := *cart(certified)
	other.Container, other.ServiceAccount = "c2", "checkout"
	f.mu.Lock()
	f.workers[cmd.Process.Pid] = other
	f.mu.Unlock()
	begin := time.Now()
	fmt.Fprintln(stdin, "go") // attributed: the child may connect
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("container c2 got no SVID while c1 held its connections: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "svid spiffe://prod.example/ns/shop/sa/checkout") {
		t.Fatalf("child: %s", out.String())
	}
	// Without the cap c2 waits in the backlog until the handshake
	// timeout (5 s) drops c1's idle connections.
	if d := time.Since(begin); d > 2*time.Second {
		t.Fatalf("c2 waited %v for its SVID while c1 held the node's connections", d)
	} else {
		t.Logf("c2's SVID with c1 at its cap of %d: %v", MaxConnsPerCaller, d)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestHelperFetchSVID is the child of TestOneCallerCannotTakeTheNodesConnections:
// after a line on stdin it fetches its SVID and prints its ID.
func TestHelperFetchSVID(t *testing.T) {
	addr := os.Getenv("BULWARK_WORKLOADAPI_HELPER")
	if addr == "" {
		t.Skip("the child of TestOneCallerCannotTakeTheNodesConnections")
	}
	bufio.NewReader(os.Stdin).ReadString('\n')
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(addr))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("svid %s\n", svid.ID)
}
