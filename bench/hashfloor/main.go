// Command hashfloor measures the least work any inventory of an OCI layout
// must do before it looks at a single file: read every layer blob and, to
// verify it, SHA-256 it (the blob as stored, or the uncompressed stream that
// the config's diffID names). It prints nothing but errors; bench/stream-speed.sh
// times it with /usr/bin/time beside bulwark and Trivy, on the same layout,
// in the same run.
//
//	hashfloor -mode sha256 LAYOUT     read and hash every blob (the blob digest check)
//	hashfloor -mode inflate LAYOUT    read and decompress every gzip blob, hash nothing
//	hashfloor -mode diffid LAYOUT     decompress and hash the uncompressed bytes (the diffID check)
//	hashfloor -mode read LAYOUT       read every blob, nothing else
//	hashfloor -mode sha256 http://REGISTRY/v2/REPO/manifests/TAG
//	                                  the same, the blobs fetched from a registry
//
// Blobs are spread over as many workers as there are cores, largest first,
// so the figure is the floor on this machine, not one core's.
package main

import (
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
)

func main() {
	mode := flag.String("mode", "sha256", "sha256, inflate, diffid or read")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: hashfloor [-mode sha256|inflate|diffid|read] LAYOUT")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *mode); err != nil {
		fmt.Fprintln(os.Stderr, "hashfloor:", err)
		os.Exit(1)
	}
}

type blob struct {
	path string
	size int64
}

func run(layout, mode string) error {
	switch mode {
	case "sha256", "inflate", "diffid", "read":
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	var blobs []blob
	var err error
	if strings.HasPrefix(layout, "http://") {
		blobs, err = registryBlobs(layout)
	} else {
		blobs, err = layerBlobs(layout)
	}
	if err != nil {
		return err
	}
	work := make(chan blob)
	errs := make(chan error, len(blobs))
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				if err := one(b.path, mode); err != nil {
					errs <- fmt.Errorf("reading blob %s: %w", b.path, err)
				}
			}
		}()
	}
	for _, b := range blobs {
		work <- b
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

// layerBlobs lists the layout's blobs over 64 KiB (the layers; manifests and
// configs are a few KiB), largest first.
func layerBlobs(layout string) ([]blob, error) {
	var blobs []blob
	err := filepath.WalkDir(filepath.Join(layout, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Size() > 64<<10 {
			blobs = append(blobs, blob{p, fi.Size()})
		}
		return nil
	})
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].size > blobs[j].size })
	return blobs, err
}

func one(path, mode string) error {
	f, err := open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var sink io.Writer = io.Discard
	var h hash.Hash
	if mode == "sha256" || mode == "diffid" {
		h = sha256.New()
		sink = h
	}
	var src io.Reader = f
	if mode == "inflate" || mode == "diffid" {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		defer zr.Close()
		src = zr
	}
	buf := make([]byte, 1<<20)
	_, err = io.CopyBuffer(sink, src, buf)
	return err
}

// open opens a blob file, or GETs a blob URL.
func open(path string) (io.ReadCloser, error) {
	if !strings.HasPrefix(path, "http://") {
		return os.Open(path)
	}
	resp, err := http.Get(path)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return resp.Body, nil
}

// registryBlobs lists the layers of the image manifest at url (an OCI or
// Docker v2 manifest), largest first, as blob URLs.
func registryBlobs(url string) ([]blob, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var m struct {
		Layers []struct {
			Digest string `json:"digest"`
			Size   int64  `json:"size"`
		} `json:"layers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w", url, err)
	}
	base, _, _ := strings.Cut(url, "/manifests/")
	var blobs []blob
	for _, l := range m.Layers {
		blobs = append(blobs, blob{base + "/blobs/" + l.Digest, l.Size})
	}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].size > blobs[j].size })
	return blobs, nil
}
