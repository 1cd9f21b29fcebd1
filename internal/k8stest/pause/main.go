// Command pause is the sandbox (pause) container of the test node: it
// waits for SIGTERM or SIGINT and exits. No image can be pulled here, so
// internal/k8stest builds this one and imports it into containerd.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	<-ch
}
