package agent

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestProcTree(t *testing.T) {
	tree := procTree(os.Getpid())
	parts := strings.Split(tree, " < ")
	if len(parts) < 2 || !strings.HasPrefix(parts[0], strconv.Itoa(os.Getpid())+" ") || !strings.HasPrefix(parts[1], strconv.Itoa(os.Getppid())+" ") {
		t.Errorf("tree of this test: %q", tree)
	}
	if len(parts) > maxTree {
		t.Errorf("%d ancestors, at most %d", len(parts), maxTree)
	}
	if got := procTree(-1); got != "" {
		t.Errorf("tree of no process: %q", got)
	}
}
