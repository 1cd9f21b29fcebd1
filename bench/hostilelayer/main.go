// Command hostilelayer measures what the streaming pass with the secret
// scanner costs on two hostile layers, generated as they are read (nothing
// on disk): one text file of -big GiB (a token on every line), and -small
// files of 100 bytes each holding a token. It prints the wall time, the
// peak heap (sampled every 5 ms), the bytes allocated and the findings
// kept.
//
//	go run ./bench/hostilelayer -big 8 -small 1000000
package main

import (
	"archive/tar"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"log"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/secrets"
)

// line holds a GitHub token whose checksum is valid (the rule checks it).
var line = func() string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	body := "abcdefghij0123456789ABCDEFGHIJ"
	n := crc32.ChecksumIEEE([]byte(body))
	sum := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		sum[i], n = digits[n%62], n/62
	}
	return "GITHUB_TOKEN=ghp_" + body + string(sum) + "\n"
}()

func main() {
	big := flag.Int("big", 8, "GiB of the one large file")
	small := flag.Int("small", 1000000, "number of small files")
	flag.Parse()
	measure(fmt.Sprintf("one file of %d GiB", *big), func(tw *tar.Writer) error {
		size := int64(*big) << 30
		if err := tw.WriteHeader(&tar.Header{Name: "big.env", Typeflag: tar.TypeReg, Mode: 0o644, Size: size}); err != nil {
			return err
		}
		chunk := make([]byte, 0, 1<<20)
		for len(chunk)+len(line) <= cap(chunk) {
			chunk = append(chunk, line...)
		}
		for size > 0 {
			n := min(size, int64(len(chunk)))
			if _, err := tw.Write(chunk[:n]); err != nil {
				return err
			}
			size -= n
		}
		return nil
	})
	measure(fmt.Sprintf("%d files of 100 bytes", *small), func(tw *tar.Writer) error {
		body := []byte(line + strings.Repeat("#", 100-len(line)-1) + "\n")
		for i := range *small {
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%d/f%d.env", i/1000, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
				return err
			}
			if _, err := tw.Write(body); err != nil {
				return err
			}
		}
		return nil
	})
}

func measure(name string, write func(*tar.Writer) error) {
	insp, err := secrets.Options{}.Inspector()
	if err != nil {
		log.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := write(tw)
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	start := time.Now()
	ix, err := layerfs.IndexStream(pr, "sha256:hostile", layerfs.StreamOptions{Inspect: insp, Digests: layerfs.DigestExecutables})
	close(stop)
	if err != nil {
		log.Fatalf("%s: %v", name, err)
	}
	took := time.Since(start)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	fmt.Printf("%s: %s, peak heap %.1f MiB, allocated %.1f MiB, notes %d bytes\n",
		name, took.Round(time.Millisecond), float64(peak.Load())/(1<<20), float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), len(ix.Notes))
	ix.Close()
}
