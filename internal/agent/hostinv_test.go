package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCatalogHost: a node's root is cataloged with the image catalogers
// (dpkg and python here), the distro read; container state, /tmp and
// /proc-like directories are left out; the report is one the server's
// validation accepts, with the running digests.
func TestCatalogHost(t *testing.T) {
	root := t.TempDir()
	write := func(p, content string) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n")
	write("var/lib/dpkg/status", "Package: openssl\nStatus: install ok installed\nVersion: 3.0.11-1~deb12u2\nArchitecture: amd64\n\nPackage: libc6\nStatus: install ok installed\nSource: glibc\nVersion: 2.36-9\nArchitecture: amd64\n")
	meta := "Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n"
	write("usr/lib/python3/dist-packages/hostpkg-1.0.dist-info/METADATA", strings.Replace(meta, "%s", "hostpkg", 1))
	for _, skipped := range []string{"tmp", "var/lib/containerd/x", "proc", "var/lib/kubelet/pods/y"} {
		write(skipped+"/site-packages/leak-1.0.dist-info/METADATA", strings.Replace(meta, "%s", "leak", 1))
	}
	// An unreadable directory is skipped, not fatal.
	if err := os.MkdirAll(filepath.Join(root, "opt/locked/sub"), 0o000); err != nil {
		t.Fatal(err)
	}
	s, err := CatalogHost(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{containers: map[string]*container{
		"c1": {id: "c1", image: "sha256:" + strings.Repeat("a", 64)},
		"c2": {id: "c2", image: "sha256:" + strings.Repeat("a", 64)},
		"c3": {id: "c3", image: "sha256:" + strings.Repeat("b", 64)},
	}}
	hi := a.HostInventory("node-1", s)
	names := map[string]string{}
	for _, p := range hi.Packages {
		names[p.Name] = p.Type + " " + p.Version + " " + p.Source
	}
	t.Logf("host packages: %v", names)
	if !strings.HasPrefix(names["openssl"], "deb 3.0.11") || !strings.HasPrefix(names["libc6"], "deb 2.36-9 glibc") || names["hostpkg"] == "" {
		t.Fatalf("host packages %v, want openssl, libc6 (source glibc), hostpkg", names)
	}
	if _, ok := names["leak"]; ok {
		t.Fatalf("a skipped directory was cataloged: %v", names)
	}
	if hi.Distro == nil || hi.Distro.ID != "debian" || hi.Distro.VersionID != "12" || hi.Kernel == "" {
		t.Fatalf("distro %+v, kernel %q", hi.Distro, hi.Kernel)
	}
	if len(hi.Running["sha256:"+strings.Repeat("a", 64)]) != 2 || len(hi.Running) != 2 {
		t.Fatalf("running %v", hi.Running)
	}
	if err := hi.Validate(); err != nil {
		t.Fatalf("the report does not validate: %v", err)
	}
	// Every heartbeat carries the last catalog, for the fleet index.
	a.hostInv.Store(&hi)
	hb := a.Heartbeat(nil)
	hb.Node, hb.Mode = "node-1", "detect"
	if len(hb.Packages) != len(hi.Packages) || hb.Distro == nil || hb.Kernel == "" {
		t.Fatalf("heartbeat packages %d of %d, distro %v, kernel %q", len(hb.Packages), len(hi.Packages), hb.Distro, hb.Kernel)
	}
	if err := hb.Validate(); err != nil {
		t.Fatalf("the heartbeat with the host catalog does not validate: %v", err)
	}
}
