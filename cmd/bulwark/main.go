// Command bulwark keeps container images trustworthy over their whole life.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bulwark-sec/bulwark/internal/cli"
)

// Stamped by a release build:
//
//	go build -ldflags "-X main.version=v1.2.0 -X main.commit=$(git rev-parse HEAD) -X main.commitTime=$(git log -1 --format=%cI)" ./cmd/bulwark
//
// A plain `go build` in a git checkout needs none of them: the commit comes
// from the build information Go records (vcs.revision, vcs.time).
var version, commit, commitTime string

func main() {
	cli.Stamp(version, commit, commitTime)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
