package k8stest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-sec/bulwark/internal/containerdtest"
)

// CRINamespace is the containerd namespace the kubelet's pods live in.
const CRINamespace = "k8s.io"

// PauseImage is the sandbox image the node's containerd is configured
// with (built here and imported: nothing can be pulled).
const PauseImage = "bulwark.test/pause:1"

// Node is a real Kubernetes node: a private containerd with its CRI plugin
// and a kubelet registered with the cluster. Pods on it use the host's
// network (there is no CNI) and name the node (there is no scheduler).
type Node struct {
	Name string
	// Containerd is the node's containerd socket; Client a client of it.
	Containerd string
	Client     *client.Client
	// CgroupRoot is the kubelet's cgroup root (a directory of its own in
	// every hierarchy, relative to the hierarchy's mount): its pods' cgroups
	// are below it.
	CgroupRoot string

	t       testing.TB
	c       *Cluster
	dir     string
	kubelet *proc
	ctrd    *proc
}

// requireNode skips t unless this machine can run a node (root, containerd,
// runc, the kubelet binary), or fails it under BULWARK_REQUIRE_KUBELET=1.
func (c *Cluster) requireNode(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, b := range []string{"containerd", "runc"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if fi, err := os.Stat(filepath.Join(c.bin, "kubelet")); err != nil || fi.Mode()&0o111 == 0 {
		missing = append(missing, "kubelet (bash .ci/build-k8s.sh)")
	}
	if len(missing) == 0 {
		return
	}
	msg := "a real node needs " + strings.Join(missing, ", ")
	if os.Getenv("BULWARK_REQUIRE_KUBELET") == "1" {
		t.Fatal(msg + "; BULWARK_REQUIRE_KUBELET=1 makes this a failure")
	}
	t.Skip(msg)
}

// StartControllers runs kube-controller-manager with the deployment and
// replicaset controllers, so Deployments make pods.
func (c *Cluster) StartControllers(t testing.TB) {
	t.Helper()
	if fi, err := os.Stat(filepath.Join(c.bin, "kube-controller-manager")); err != nil || fi.Mode()&0o111 == 0 {
		msg := "kube-controller-manager missing in " + c.bin + " (bash .ci/build-k8s.sh)"
		if os.Getenv("BULWARK_REQUIRE_KUBELET") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.launch("kube-controller-manager", "--kubeconfig="+c.Kubeconfig, "--controllers=deployment,replicaset",
		"--leader-elect=false", "--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ports[0]),
		"--concurrent-deployment-syncs=2", "--concurrent-replicaset-syncs=2"); err != nil {
		t.Fatal(err)
	}
}

// StartNode runs containerd (CRI on, the sandbox image imported) and a
// kubelet registered as name, and waits until the node object exists.
// Everything is stopped and cleaned (containers, mounts, cgroups) when t
// ends.
func (c *Cluster) StartNode(t testing.TB, name string) *Node {
	t.Helper()
	c.requireNode(t)
	dir, err := os.MkdirTemp("", "bwnode") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{Name: name, t: t, c: c, dir: dir, Containerd: filepath.Join(dir, "c.sock"), CgroupRoot: filepath.Base(dir)}
	t.Cleanup(n.stop)
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), n.Containerd, n.Containerd+".ttrpc", PauseImage, filepath.Join(dir, "cni"))
	ctrdCfg := filepath.Join(dir, "containerd.toml")
	if err := os.WriteFile(ctrdCfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		t.Fatal(err)
	}
	if n.ctrd, err = c.launchPath(bin, "containerd-"+name, "--config", ctrdCfg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if cl, err := client.New(n.Containerd, client.WithTimeout(5*time.Second)); err == nil {
			if _, err = cl.Version(context.Background()); err == nil {
				n.Client = cl
				break
			}
			cl.Close()
		}
		if time.Now().After(deadline) || n.ctrd.exited() {
			t.Fatalf("containerd did not come up\n%s", n.ctrd.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.Import(n.pauseImage(), PauseImage)

	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	kcfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzPort: 0
containerRuntimeEndpoint: unix://%s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {}
cgroupRoot: /%s
syncFrequency: 5s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 5s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %q}
authorization: {mode: AlwaysAllow}
`, ports[0], n.Containerd, filepath.Base(dir), filepath.Join(c.dir, "pki", "ca.crt"))
	// Its own cgroup root: two nodes on one machine (tests of two
	// packages at once) do not share kubepods.
	for _, h := range cgroupHierarchies() {
		if err := os.MkdirAll(filepath.Join(h, filepath.Base(dir)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	kcfgPath := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(kcfgPath, []byte(kcfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if n.kubelet, err = c.launch("kubelet", "--config="+kcfgPath, "--kubeconfig="+c.Kubeconfig, "--hostname-override="+name,
		"--node-ip=127.0.0.1", "--root-dir="+filepath.Join(dir, "kubelet"), "--cert-dir="+filepath.Join(dir, "kubelet-pki"), "--v=1"); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(90 * time.Second)
	for {
		if _, err := c.Kubectl("get", "node", name); err == nil {
			return n
		}
		if time.Now().After(deadline) || n.kubelet.exited() {
			t.Fatalf("node %s not registered\n%s", name, n.kubelet.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// KubeletLog is the end of the kubelet's log, for failure messages.
func (n *Node) KubeletLog() string { return n.kubelet.logTail() + n.ctrd.logTail() }

// pauseImage builds ./pause into a one-layer image.
func (n *Node) pauseImage() v1.Image {
	b := containerdtest.BuildStatic(n.t, "github.com/bulwark-sec/bulwark/internal/k8stest/pause")
	return containerdtest.Image(n.t, map[string][]byte{"pause": b}, "/pause")
}

// Import loads img into the node's CRI namespace under ref (a tag) and
// every extra name (digest references: repo@sha256:...), unpacked for the
// kubelet. It goes through an OCI layout, which keeps the manifest digest
// a registry has (a docker archive would be converted to another one).
func (n *Node) Import(img v1.Image, ref string, extra ...string) {
	t := n.t
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), CRINamespace)
	dir, err := os.MkdirTemp(n.dir, "layout")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"io.containerd.image.name": ref})); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tarDir(&buf, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Client.Import(ctx, &buf); err != nil {
		t.Fatalf("importing %s: %v", ref, err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	size, err := img.Size()
	if err != nil {
		t.Fatal(err)
	}
	target := ocispec.Descriptor{MediaType: string(mt), Digest: digest.Digest(d.String()), Size: size}
	var rec images.Image
	for _, name := range append([]string{ref}, extra...) {
		rec = images.Image{Name: name, Target: target}
		if _, err := n.Client.ImageService().Create(ctx, rec); err != nil {
			if _, err := n.Client.ImageService().Update(ctx, rec); err != nil {
				t.Fatalf("naming %s %s: %v", ref, name, err)
			}
		}
	}
	if err := client.NewImage(n.Client, rec).Unpack(ctx, "overlayfs"); err != nil {
		t.Fatalf("unpacking %s: %v", ref, err)
	}
}

// tarDir writes the files under dir to w as a tar archive.
func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Name: rel + "/", Typeflag: tar.TypeDir, Mode: 0o755})
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b))}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// stop stops the kubelet, kills what it left in containerd, stops
// containerd and removes mounts, cgroups and files.
func (n *Node) stop() {
	if n.kubelet != nil {
		_ = n.kubelet.stop()
	}
	if n.Client != nil {
		ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), CRINamespace), 30*time.Second)
		cs, _ := n.Client.Containers(ctx)
		for _, ctr := range cs {
			if task, err := ctr.Task(ctx, nil); err == nil {
				_ = task.Kill(ctx, syscall.SIGKILL)
				if ch, err := task.Wait(ctx); err == nil {
					select {
					case <-ch:
					case <-time.After(5 * time.Second):
					}
				}
				_, _ = task.Delete(ctx)
			}
			_ = ctr.Delete(ctx, client.WithSnapshotCleanup)
		}
		cancel()
		n.Client.Close()
	}
	if n.ctrd != nil {
		_ = n.ctrd.stop()
	}
	containerdtest.UnmountUnder(n.dir)
	removeCgroups(filepath.Base(n.dir))
	_ = os.RemoveAll(n.dir)
}

// cgroupHierarchies are the mounted cgroup hierarchies (v1 controllers
// and the unified one).
func cgroupHierarchies() []string {
	var out []string
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hs {
		if fi, err := os.Lstat(h); err == nil && fi.IsDir() {
			out = append(out, h)
		}
	}
	return out
}

// removeCgroups removes the cgroup name (and what is under it) from every
// v1 hierarchy and the unified one, deepest first.
func removeCgroups(name string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	for _, root := range roots {
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
	}
}
