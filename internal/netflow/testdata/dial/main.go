// Command dial is the workload of netflow's container test: it opens a
// TCP connection to ADDR, asks a PostgreSQL server whether it speaks TLS
// (an SSLRequest, answered 'S' or 'N'), and holds the connection open.
//
//	dial ADDR
package main

import (
	"net"
	"os"
	"time"
)

func main() {
	for {
		c, err := net.Dial("tcp", os.Args[1])
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		c.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f})
		c.Read(make([]byte, 1))
		time.Sleep(time.Hour)
	}
}
