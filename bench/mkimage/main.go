// Command mkimage builds the demo and benchmark image (debootstrap bookworm
// minbase + a Go binary and an npm tree) as a `docker save` archive and an
// OCI layout, printing each step and its time on stderr.
//
//	go run ./bench/mkimage -out /tmp/bulwark-bench
//
// The image is created now (-created overrides), so that the default policy's
// image-age rule passes; its layers are reproducible and cached under
// $BULWARK_TEST_CACHE (default ~/.cache/bulwark-test).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/bulwark-sec/bulwark/internal/testimage"
)

func main() {
	out, created, err := options(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(2)
	}
	if err := run(out, created, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(filepath.Join(out, "image.tar"))
	fmt.Println(filepath.Join(out, "oci"))
}

// options parses the command line: the output directory and the creation
// time (now unless -created says otherwise).
func options(args []string) (out string, created time.Time, err error) {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.StringVar(&out, "out", filepath.Join(os.TempDir(), "bulwark-bench"), "output directory")
	at := fs.String("created", "", "the image's creation time, RFC 3339 (default now)")
	if err := fs.Parse(args); err != nil {
		return "", time.Time{}, err
	}
	if fs.NArg() > 0 {
		return "", time.Time{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	created = time.Now().UTC().Truncate(time.Second)
	if *at != "" {
		if created, err = time.Parse(time.RFC3339, *at); err != nil {
			return "", time.Time{}, fmt.Errorf("parsing -created %q: %w", *at, err)
		}
	}
	return out, created, nil
}

// run builds the layers (cached after the first run) and writes the image.
func run(out string, created time.Time, progress io.Writer) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("creating %q: %w", out, err)
	}
	var base, app string
	err := step(progress, "Debian bookworm minbase layer (debootstrap: minutes the first time, 20 under heavy load; then cached)", func() (err error) {
		base, err = testimage.DebianLayer()
		return err
	})
	if err != nil {
		return err
	}
	err = step(progress, "application layer (go build, npm install; cached)", func() (err error) {
		app, err = testimage.AppLayer()
		return err
	})
	if err != nil {
		return err
	}
	return write(out, []string{base, app}, []string{"debootstrap --variant=minbase bookworm", "COPY app /"}, created, progress)
}

// write assembles layers (uncompressed tar files) into out/image.tar and
// the OCI layout out/oci, both with the config created at created.
func write(out string, layers, history []string, created time.Time, progress io.Writer) error {
	setCreated := func(c *v1.ConfigFile) {
		c.Created = v1.Time{Time: created}
		for i := range c.History {
			c.History[i].Created = v1.Time{Time: created}
		}
	}
	archive := filepath.Join(out, "image.tar")
	err := step(progress, "writing "+archive, func() error {
		return testimage.WriteDockerArchiveWith(archive, "bulwark-bench:latest", layers, history, setCreated)
	})
	if err != nil {
		return fmt.Errorf("writing %q: %w", archive, err)
	}
	dir := filepath.Join(out, "oci")
	err = step(progress, "writing the OCI layout "+dir+" (gzips every layer)", func() error {
		img, err := testimage.Image(layers, history)
		if err != nil {
			return err
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return err
		}
		cfg = cfg.DeepCopy()
		setCreated(cfg)
		if img, err = mutate.ConfigFile(img, cfg); err != nil {
			return err
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		p, err := layout.Write(dir, empty.Index)
		if err != nil {
			return err
		}
		return p.AppendImage(img)
	})
	if err != nil {
		return fmt.Errorf("writing %q: %w", dir, err)
	}
	return nil
}

// step runs fn, telling progress what it does, every 30 seconds that it is
// still at it, and how long it took.
func step(progress io.Writer, what string, fn func() error) error {
	start := time.Now()
	fmt.Fprintf(progress, "mkimage: %s ...\n", what)
	done := make(chan struct{})
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(progress, "mkimage:   still working (%s)\n", time.Since(start).Round(time.Second))
			}
		}
	}()
	err := fn()
	close(done)
	<-ticked
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "mkimage:   done in %s\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}
