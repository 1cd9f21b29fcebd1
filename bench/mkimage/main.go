// Command mkimage builds the benchmark image (debootstrap bookworm minbase +
// a Go binary and an npm tree) as a `docker save` archive and an OCI layout.
//
//	go run ./bench/mkimage -out /tmp/bulwark-bench
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/bulwark-sec/bulwark/internal/testimage"
)

func main() {
	out := flag.String("out", filepath.Join(os.TempDir(), "bulwark-bench"), "output directory")
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	base, err := testimage.DebianLayer()
	if err != nil {
		log.Fatal(err)
	}
	app, err := testimage.AppLayer()
	if err != nil {
		log.Fatal(err)
	}
	layers := []string{base, app}
	history := []string{"debootstrap --variant=minbase bookworm", "COPY app /"}
	archive := filepath.Join(*out, "image.tar")
	if err := testimage.WriteDockerArchive(archive, "bulwark-bench:latest", layers, history); err != nil {
		log.Fatal(err)
	}
	img, err := testimage.Image(layers, history)
	if err != nil {
		log.Fatal(err)
	}
	dir := filepath.Join(*out, "oci")
	os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		log.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		log.Fatal(err)
	}
	fmt.Println(archive)
	fmt.Println(dir)
}
