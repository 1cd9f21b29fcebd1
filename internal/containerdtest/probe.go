package containerdtest

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Ask sends one command line to a test program's command socket sock (a
// probe in a container serving on a bind-mounted directory) and returns
// its answer, the rest of the connection without surrounding space. The
// test fails when the socket cannot be reached; an answer not complete
// within a minute is returned as far as it came.
func Ask(t testing.TB, sock, cmd string) string {
	t.Helper()
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatalf("reaching the probe at %s: %v", sock, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	fmt.Fprintln(conn, cmd)
	b, _ := io.ReadAll(conn)
	return strings.TrimSpace(string(b))
}
