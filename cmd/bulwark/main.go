// Command bulwark keeps container images trustworthy over their whole life.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bulwark-sec/bulwark/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
