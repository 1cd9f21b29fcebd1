// Command bulwark-agent runs on every node next to containerd: it sees every
// exec in every container and refuses (or reports) drift from the image.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bulwark-sec/bulwark/internal/agent"
	"github.com/bulwark-sec/bulwark/internal/canary"
)

func main() {
	canary.MaybeHelper() // the canary helper is this binary again (internal/canary)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := agent.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
