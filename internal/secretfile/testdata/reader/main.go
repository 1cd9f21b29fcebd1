// Command reader is the workload of secretfile's container test: every
// 100 ms it reads FILE (a secret the agent delivered to its volume) and
// writes what it found to OUT ("missing" when there is no such file).
//
//	reader FILE OUT
package main

import (
	"os"
	"time"
)

func main() {
	for {
		b, err := os.ReadFile(os.Args[1])
		if err != nil {
			b = []byte("missing")
		}
		os.WriteFile(os.Args[2]+".tmp", b, 0o644)
		os.Rename(os.Args[2]+".tmp", os.Args[2])
		time.Sleep(100 * time.Millisecond)
	}
}
