package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/platforms"
	"github.com/containerd/typeurl/v2"
	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/bpflsm"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// container is one watched container.
type container struct {
	id, namespace, image string
	pid                  uint32
	dev                  uint64         // of its root filesystem
	devs                 []uint64       // of the other filesystems that are its own (mounts.go)
	loaderEntry          bool           // its image's entrypoint is the ELF interpreter (loader.go)
	mountGap             string         // why it can make mounts that are not held, "" if it cannot (mounts.go)
	held                 []uint64       // devices of every filesystem marked for it (fanotify; unheld.go)
	mounts               []uint64       // unique ids of the mounts marked alone (unheldkill.go)
	pins                 map[uint64]int // own device -> a descriptor of its filesystem (pins.go)
	sensed               bool           // the exec sensor knows it (unheldkill.go)
	compiled             *allowlist.Compiled
	labels               map[string]string // pod labels from CRI (status.go)
	mode                 Mode
	canary               bool // the canary's throwaway container (canary.go)
	cgroup               uint64
	lsmFiles             *bpflsm.Compiled // what BPF-LSM lists for it (lsm.go)
	ref                  string           // the image name containerd knows
	learn                *learning        // its image's learning window (learn.go)
	ran                  ranLog           // what ran in it (ran.go)
	// relisted, once set, replaces compiled: a list changed while the
	// container runs (a learning window locked, the server's list came);
	// read through rules().
	relisted atomic.Pointer[allowlist.Compiled]
}

// ContainerInfo says what the agent knows of a watched container.
type ContainerInfo struct {
	ID, Namespace, Image string
	Allowed              int    // distinct allowed contents
	Allowlist            string // where its list came from (Source*, allowsrv.go)
	// MountGap says why the container's processes can make mounts whose
	// execs are not held (mounts.go); "" when they cannot.
	MountGap string
}

// Container returns a watched container by id.
func (a *Agent) Container(id string) (ContainerInfo, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	c, ok := a.containers[id]
	if !ok {
		return ContainerInfo{}, false
	}
	return ContainerInfo{ID: c.id, Namespace: c.namespace, Image: c.image, Allowed: c.rules().List.Len(), Allowlist: c.listSource(),
		MountGap: c.mountGap}, true
}

// watch subscribes to task events first, then adopts the containers that
// already run, so none falls between the two.
func (a *Agent) watch(ctx context.Context) error {
	evs, errs := a.client.Subscribe(ctx, `topic=="/tasks/create"`, `topic=="/tasks/delete"`)
	for _, ns := range a.cfg.Namespaces {
		if err := a.scan(namespaces.WithNamespace(ctx, ns), ns); err != nil {
			return err
		}
	}
	a.gateRecover() // gaterecover.go: what the gate held when the agent before this one died
	a.gateOpen()    // gate.go: from now on a container's execs wait for its adoption
	close(a.ready)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("following containerd events: %w", err)
		case env := <-evs:
			if env == nil || !a.watched(env.Namespace) {
				continue
			}
			v, err := typeurl.UnmarshalAny(env.Event)
			if err != nil {
				a.log.Warn("decoding a containerd event", "topic", env.Topic, "error", err)
				continue
			}
			nctx := namespaces.WithNamespace(ctx, env.Namespace)
			switch e := v.(type) {
			case *apievents.TaskCreate:
				if err := a.adopt(nctx, env.Namespace, e.ContainerID, e.Pid); err != nil {
					a.log.Error("watching a new container", "container", e.ContainerID, "error", err)
				}
			case *apievents.TaskDelete:
				if e.ID == "" || e.ID == e.ContainerID { // the init task, not an exec
					a.forget(e.ContainerID)
				}
			}
		}
	}
}

func (a *Agent) watched(ns string) bool {
	for _, n := range a.cfg.Namespaces {
		if n == ns {
			return true
		}
	}
	return false
}

// scan adopts every container of ns that has a task.
func (a *Agent) scan(ctx context.Context, ns string) error {
	cs, err := a.client.Containers(ctx)
	if err != nil {
		return fmt.Errorf("listing the containers of namespace %q: %w", ns, err)
	}
	for _, c := range cs {
		t, err := c.Task(ctx, nil)
		if err != nil {
			continue // no task: nothing runs
		}
		if err := a.adopt(ctx, ns, c.ID(), t.Pid()); err != nil {
			a.log.Error("watching a running container", "container", c.ID(), "error", err)
		}
	}
	return nil
}

// adoptNow compiles the allowlist of a container's image and marks its root
// filesystem, reached through its init process (/proc/PID/root), which
// works whatever the snapshotter and state directory are. It returns the
// container watched, nil for one in mode off. Callers go through adopt
// (gate.go), which adopts a container once however many ask.
func (a *Agent) adoptNow(ctx context.Context, ns, id string, pid uint32) (*container, error) {
	start := time.Now()
	c, err := a.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("loading container %q: %w", id, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading container %q: %w", id, err)
	}
	// The mode before the list: a container in mode off the gate holds
	// waits for nothing it does not need.
	md := a.decideContainer(ctx, ns, info) // modes.go
	if md.Mode == ModeOff {
		a.log.Info("not watching container: mode off", "container", id, "namespace", ns, "rule", md.ModeRule)
		return nil, nil
	}
	img, err := a.client.GetImage(ctx, info.Image)
	if err != nil {
		return nil, fmt.Errorf("loading image %q of container %q: %w", info.Image, id, err)
	}
	list, err := a.list(ctx, img)
	if err != nil {
		return nil, err
	}
	pidfd, err := initOf(pid, id) // procpin.go
	if err != nil {
		return nil, fmt.Errorf("container %q: %w", id, err)
	}
	defer unix.Close(pidfd)
	if sameNamespace("mnt", int(pid), os.Getpid()) {
		// The agent's own container (a DaemonSet's pod, hostPID): its root
		// is the agent's, nothing to watch; checked after initOf, so a pid
		// reused by a process of the agent's namespace cannot pass for it.
		a.log.Info("not watching the agent's own container", "container", id, "namespace", ns)
		return nil, nil
	}
	root := filepath.Join(procRoot, strconv.Itoa(int(pid)), "root")
	dev, err := rootDevice(root, "/")
	if err != nil {
		return nil, fmt.Errorf("container %q: %w", id, err)
	}
	c2 := &container{id: id, namespace: ns, image: list.Image, pid: pid, dev: dev, compiled: allowlist.Compile(list, verdictsPerContainer),
		labels: podLabels(info.Labels), mode: md.Mode, ref: info.Image, learn: a.window(list.Image, info.Image, md.Learn)}
	a.cfg.adoptDelay.sleep() // tests: the container wins the race to its first exec (gate.go)
	if a.fan != nil {
		if err := a.markContainer(c2, root); err != nil { // mounts.go
			return nil, fmt.Errorf("watching container %q: %w", id, err)
		}
	}
	c2.loaderEntry = loaderName(entrypointOf(list.Entrypoint, list.Cmd))
	if a.lsm != nil {
		if err := a.lsm.watch(ctx, c2, root, a.cache); err != nil {
			c2.unpin()
			return nil, fmt.Errorf("watching container %q: %w", id, err)
		}
	} else if a.cfg.ExecEvents {
		c2.cgroup, _ = cgroupID(int(pid)) // the exec sensor attributes by it; 0 (unknown) when there is no cgroup v2
	}
	if a.writes != nil {
		if err := a.writes.MarkCloseWrite(root); err != nil {
			a.log.Warn("executables written in this container are not reported", "container", id, "error", err.Error())
		}
	}
	if !alive(pidfd) {
		c2.unpin()
		return nil, fmt.Errorf("container %q: its process %d ended while it was adopted (its number may have gone to another)", id, pid)
	}
	a.mu.Lock()
	if old, ok := a.containers[id]; ok {
		a.unindex(old)
	}
	a.containers[id] = c2
	a.byDev[dev] = c2
	for _, d := range c2.devs {
		if o := a.byDev[d]; o != nil && o.id != id {
			delete(a.byDev, d) // shared by two containers: neither's by device, both by cgroup
			continue
		}
		a.byDev[d] = c2
	}
	if c2.cgroup != 0 {
		a.byCgroup[c2.cgroup] = c2
	}
	a.mu.Unlock()
	a.sensorWatch(c2) // unheldkill.go
	a.log.Info("watching container", "container", id, "namespace", ns, "image", list.Image, "allowed", list.Len(), "mode", c2.mode,
		"took", time.Since(start).Round(time.Microsecond))
	return c2, nil
}

// sameNamespace says whether processes a and b share their namespace of
// kind ("pid", "mnt": a name under /proc/PID/ns); false when either cannot
// be read.
func sameNamespace(kind string, a, b int) bool {
	var x, y unix.Stat_t
	if unix.Stat(filepath.Join(procRoot, strconv.Itoa(a), "ns", kind), &x) != nil ||
		unix.Stat(filepath.Join(procRoot, strconv.Itoa(b), "ns", kind), &y) != nil {
		return false
	}
	return x.Dev == y.Dev && x.Ino == y.Ino
}

// rootDevice is the device of a container's root filesystem. It refuses a
// container whose root is the host's own filesystem: every exec of the node
// would wait on the agent.
func rootDevice(root, host string) (uint64, error) {
	var a, b unix.Stat_t
	if err := unix.Stat(root, &a); err != nil {
		return 0, fmt.Errorf("reading its root %q: %w", root, err)
	}
	if err := unix.Stat(host, &b); err != nil {
		return 0, fmt.Errorf("reading %q: %w", host, err)
	}
	if a.Dev == b.Dev {
		return 0, errors.New("its root filesystem is the host's: not watched")
	}
	return a.Dev, nil
}

func (a *Agent) forget(id string) {
	a.mu.Lock()
	c, ok := a.containers[id]
	if ok {
		a.unindex(c)
		delete(a.containers, id)
	}
	a.mu.Unlock()
	if ok && a.lsm != nil {
		a.lsm.unwatch(c)
	}
	if ok {
		a.pruneLists()
	}
}

// maxIdleLists bounds the allowlists kept for digests no watched container
// runs (kept so that the next container of the digest is adopted at once):
// every image ever run on the node stayed in memory, and whoever creates
// pods can run image after image.
const maxIdleLists = 64

// pruneLists forgets idle lists past maxIdleLists, but for those of a
// learning window (the learned list is made once, at its lock).
func (a *Agent) pruneLists() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.lists) <= maxIdleLists {
		return
	}
	used := map[string]bool{}
	for _, c := range a.containers {
		used[c.image] = true
	}
	idle := 0
	for d := range a.lists {
		if !used[d] {
			idle++
		}
	}
	for d := range a.lists {
		if idle <= maxIdleLists {
			return
		}
		if !used[d] && a.learning[d] == nil {
			delete(a.lists, d)
			a.allow.forget(d)
			idle--
		}
	}
}

// unindex drops c from the lookups by device and cgroup; a.mu is held.
func (a *Agent) unindex(c *container) {
	for _, d := range append([]uint64{c.dev}, c.devs...) {
		if a.byDev[d] == c {
			delete(a.byDev, d)
		}
	}
	if a.byCgroup[c.cgroup] == c {
		delete(a.byCgroup, c.cgroup)
		a.sensorUnwatch(c) // unheldkill.go
	}
	c.unpin() // pins.go
}

// list returns the allowlist of img, built once per manifest digest: from
// the server's scan when the agent has a server (allowsrv.go), else, or
// when the server gives none, from InventoryDir, else from the layers in
// containerd's content store. A list made on the node although the agent
// has a server is logged and counted, and asked of the server again every
// allowRetry (upgradeLists) and at an adoption of its digest after that.
func (a *Agent) list(ctx context.Context, img client.Image) (*allowlist.List, error) {
	digest := img.Target().Digest.String()
	a.mu.RLock()
	old, ok := a.lists[digest]
	a.mu.RUnlock()
	if ok && (a.cfg.Allowlists == nil || !a.allow.retryDue(old)) {
		return old, nil
	}
	cfg, err := imageConfig(ctx, img, digest) // allowupgrade.go
	if err != nil {
		return nil, err
	}
	l, serr := a.fromServer(ctx, img, digest, cfg)
	if l == nil && ok {
		a.allow.postpone(digest) // not asked again before allowRetry
		return old, nil
	}
	if l == nil {
		if l, err = a.onNode(ctx, img, digest, cfg); err != nil {
			return nil, err
		}
		if serr != nil {
			a.noteFallback(digest, l, serr)
		}
	}
	a.allow.made(l)
	a.mu.Lock()
	a.lists[digest] = l
	a.mu.Unlock()
	return l, nil
}

// onNode makes the list of img on this node: from InventoryDir, else from
// the content store.
func (a *Agent) onNode(ctx context.Context, img client.Image, digest string, cfg allowlist.Config) (*allowlist.List, error) {
	l, err := a.fromInventory(digest, cfg)
	if l != nil {
		l.Source = SourceInventory
		return l, nil
	}
	if err != nil {
		a.log.Info("the inventory cannot make the allowlist; reading the layers", "image", digest, "error", err)
	}
	if l, err = a.fromContent(ctx, img, digest, cfg); err != nil {
		return nil, err
	}
	l.Source = SourceContent
	return l, nil
}

// fromInventory reads InventoryDir/<hex>.json; (nil, nil) when there is none.
func (a *Agent) fromInventory(digest string, cfg allowlist.Config) (*allowlist.List, error) {
	if a.cfg.InventoryDir == "" {
		return nil, nil
	}
	if _, err := allowlist.ParseDigest(digest); err != nil {
		return nil, err // never a path from an unchecked name
	}
	f, err := os.Open(filepath.Join(a.cfg.InventoryDir, strings.TrimPrefix(digest, "sha256:")+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening the inventory of %q: %w", digest, err)
	}
	defer f.Close()
	s, err := sbom.Decode(io.LimitReader(f, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("reading the inventory of %q: %w", digest, err)
	}
	return allowlist.FromInventory(digest, s.Files, cfg)
}

// fromContent hashes the image's executables from containerd's content
// store, one streaming pass per layer.
func (a *Agent) fromContent(ctx context.Context, img client.Image, digest string, cfg allowlist.Config) (*allowlist.List, error) {
	cs := img.ContentStore()
	m, err := images.Manifest(ctx, cs, img.Target(), platforms.Default())
	if err != nil {
		return nil, fmt.Errorf("reading the manifest of %q: %w", digest, err)
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the layers of %q: %w", digest, err)
	}
	if len(diffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("reading the layers of %q: %d diffIDs for %d layers", digest, len(diffIDs), len(m.Layers))
	}
	layers := make([]allowlist.Layer, len(m.Layers))
	for i, desc := range m.Layers {
		layers[i] = allowlist.Layer{DiffID: diffIDs[i].String(), Open: func() (io.ReadCloser, error) {
			ra, err := cs.ReaderAt(ctx, desc)
			if err != nil {
				return nil, fmt.Errorf("opening layer %q: %w", desc.Digest, err)
			}
			return struct {
				io.Reader
				io.Closer
			}{content.NewReader(ra), ra}, nil
		}}
	}
	return allowlist.FromLayers(ctx, digest, layers, cfg)
}
