// Command fetch is the workload of the secret store's containerd test: a
// go-spiffe client that fetches a secret over mTLS with the X.509-SVID in
// DIR (svid.pem, svid.key; the server's CA in ca.pem) every 200 ms and
// writes the last answer ("CODE BODY") to DIR/last.
//
//	fetch DIR URL
package main

import (
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func main() {
	dir, url := os.Args[1], os.Args[2]
	for {
		out := fetch(dir, url)
		tmp := filepath.Join(dir, "last.tmp")
		os.WriteFile(tmp, []byte(out), 0o600)
		os.Rename(tmp, filepath.Join(dir, "last"))
		time.Sleep(200 * time.Millisecond)
	}
}

func fetch(dir, url string) string {
	svid, err := x509svid.Load(filepath.Join(dir, "svid.pem"), filepath.Join(dir, "svid.key"))
	if err != nil {
		return "0 loading the SVID: " + err.Error()
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return "0 " + err.Error()
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsconfig.MTLSWebClientConfig(svid, roots)}}
	resp, err := c.Get(url)
	if err != nil {
		return "0 " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}
