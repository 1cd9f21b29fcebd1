package agent

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/catalog"
	"github.com/bulwark-sec/bulwark/internal/image"
	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// hostSkip are the host directories never cataloged: container state
// (their images are inventoried by digest), caches and temporary files.
var hostSkip = []string{
	"proc", "sys", "dev", "run", "tmp", "var/tmp",
	"var/lib/containerd", "var/lib/docker", "var/lib/kubelet", "var/lib/bulwark-agent", "var/cache",
}

// CatalogHost inventories the node's own root filesystem at root ("/" on a
// node; the host's root mounted into the agent's container elsewhere) with
// the image catalogers. Only root's own filesystem is read: other mounts
// (proc, sys, tmpfs, container overlays, data volumes) and hostSkip are
// left out, and an unreadable entry is skipped, not fatal.
func CatalogHost(ctx context.Context, root string) (*sbom.SBOM, error) {
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		return nil, fmt.Errorf("cataloging the host at %q: %w", root, err)
	}
	dev := st.Dev
	skip := func(rel string, info fs.FileInfo) bool {
		for _, s := range hostSkip {
			if rel == s {
				return true
			}
		}
		if info.IsDir() {
			if s, ok := info.Sys().(*syscall.Stat_t); ok && s.Dev != dev {
				return true
			}
		}
		return false
	}
	fsys, err := layerfs.FromDirFunc(root, skip)
	if err != nil {
		return nil, fmt.Errorf("cataloging the host at %q: %w", root, err)
	}
	defer fsys.Close()
	img := &image.Image{Source: sbom.Source{Kind: image.KindDir, Name: root, Layers: []sbom.Layer{}}, FS: fsys}
	s, err := catalog.Image(ctx, img, catalog.Options{})
	if err != nil {
		return nil, fmt.Errorf("cataloging the host at %q: %w", root, err)
	}
	return s, nil
}

// HostInventory is the report of the node's packages and of the digests
// running on it, bounded to what the server accepts.
func (a *Agent) HostInventory(node string, s *sbom.SBOM) agentproto.HostInventory {
	hi := agentproto.HostInventory{Node: node, Generated: time.Now().UTC(), Kernel: kernelRelease(), Running: map[string][]string{}}
	if d := s.Distro; d != nil && d.ID != "" {
		hi.Distro = &agentproto.Distro{ID: d.ID, VersionID: d.VersionID}
	}
	seen := map[agentproto.Package]bool{}
	for _, p := range s.Packages {
		hp := agentproto.Package{Type: p.Type, Name: p.Name, Version: p.Version}
		if p.Source != nil {
			hp.Source, hp.SourceVersion = p.Source.Name, p.Source.Version
		}
		if seen[hp] || hp.Type == "" || hp.Name == "" || hp.Version == "" || len(hp.Name) > agentproto.MaxField ||
			len(hp.Version) > agentproto.MaxField || strings.ContainsRune(hp.Name+hp.Version, 0) {
			continue
		}
		seen[hp] = true
		if len(hi.Packages) < agentproto.MaxPackages {
			hi.Packages = append(hi.Packages, hp)
		}
	}
	for _, c := range a.Containers() {
		if strings.HasPrefix(c.Image, "sha256:") && len(hi.Running[c.Image]) < agentproto.MaxContainers {
			hi.Running[c.Image] = append(hi.Running[c.Image], c.ID)
		}
	}
	for _, w := range s.Warnings {
		if len(hi.Warnings) == 100 {
			break
		}
		hi.Warnings = append(hi.Warnings, truncate(w, agentproto.MaxField))
	}
	sort.Slice(hi.Packages, func(i, j int) bool {
		return hi.Packages[i].Type+"/"+hi.Packages[i].Name < hi.Packages[j].Type+"/"+hi.Packages[j].Name
	})
	return hi
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// kernelRelease is uname -r.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// hostInventoryLoop catalogs the host at root once the agent has adopted
// the running containers, sends it, and again every every (a day by
// default); a failed send is retried with backoff, a failed catalog logged
// and tried at the next round.
func (a *Agent) hostInventoryLoop(ctx context.Context, s *Sender, node, root string, every time.Duration) error {
	select {
	case <-ctx.Done():
		return nil
	case <-a.Ready():
	}
	for {
		start := time.Now()
		inv, err := CatalogHost(ctx, root)
		if err != nil {
			a.log.Error("cataloging the host", "root", root, "error", err)
		} else {
			hi := a.HostInventory(node, inv)
			a.hostInv.Store(&hi) // every heartbeat carries it too (status.go)
			a.log.Info("host cataloged", "root", root, "packages", len(hi.Packages), "running", len(hi.Running), "took", time.Since(start).Round(time.Millisecond).String())
			for backoff := time.Second; ; backoff = min(2*backoff, 5*time.Minute) {
				err := s.post(ctx, agentproto.HostInventoryPath, hi, nil)
				if err == nil || ctx.Err() != nil {
					break
				}
				a.log.Warn("sending the host inventory", "error", err, "retry", backoff.String())
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(backoff):
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}
