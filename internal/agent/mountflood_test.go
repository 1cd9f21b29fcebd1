package agent

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/containerdtest"
	"github.com/bulwark-sec/bulwark/internal/fanotify"
	"github.com/bulwark-sec/bulwark/internal/kerneltest"
)

// TestMountFlood: a container mounting and unmounting a tmpfs in a loop
// has its own mount table read again, not the other containers': they are
// read again at the flood's rate only where the kernel gives no mount
// namespace ids (the fallback, forced here first), and not at all where it
// does. A mount attached in another container during the flood is marked
// (a drifted exec from it refused).
func TestMountFlood(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	img := importImage(t, ctx, c, probeImage(t, buildProbe(t)))
	var col collector
	a, _ := startAgent(t, addr, ModePrevent, &col)
	if a.mountWatch == nil {
		kerneltest.Skip(t, "the kernel reports no mount attachments (Linux 6.15)")
	}
	admin := oci.WithAddedCapabilities([]string{"CAP_SYS_ADMIN"})
	flooder := startWatched(t, ctx, c, img, a, "flooder", admin)
	victim := startWatched(t, ctx, c, img, a, "victim", admin)
	quiet := []string{"quiet0", "quiet1", "quiet2"}
	if n, _ := strconv.Atoi(os.Getenv("BULWARK_FLOOD_QUIET")); n > 3 { // measuring: more containers
		for i := 3; i < n; i++ {
			quiet = append(quiet, "quiet"+strconv.Itoa(i))
		}
	}
	for _, id := range quiet {
		startWatched(t, ctx, c, img, a, id)
	}
	saved := map[*container]uint64{}
	a.mounts.mu.Lock()
	for c, tr := range a.mounts.tracks {
		if tr.ns == 0 {
			a.mounts.mu.Unlock()
			kerneltest.Skip(t, "the kernel gives no mount namespace ids (Linux 6.10)")
		}
		saved[c] = tr.ns
	}
	a.mounts.mu.Unlock()
	setNS := func(keep bool) {
		a.mounts.mu.Lock()
		defer a.mounts.mu.Unlock()
		for c, tr := range a.mounts.tracks {
			if tr.ns = 0; keep {
				tr.ns = saved[c]
			}
		}
	}
	const floodMS = 2000
	flood := func(name string, during func()) map[string]int64 {
		t.Helper()
		ids := append([]string{"flooder", "victim"}, quiet...)
		before := map[string]int64{}
		for _, id := range ids {
			before[id] = a.mountRereads(id)
		}
		cpu0 := cpuTime(t)
		start := time.Now()
		done := make(chan string, 1)
		go func() { done <- ask(flooder.sock, fmt.Sprintf("flood /flood %d", floodMS)) }()
		if during != nil {
			during()
		}
		got := <-done
		took, cpu := time.Since(start), cpuTime(t)-cpu0
		time.Sleep(300 * time.Millisecond) // the reads the last reports asked for
		if !strings.HasPrefix(got, "ok ") {
			t.Fatalf("%s: the flood: %s", name, got)
		}
		delta := map[string]int64{}
		for _, id := range ids {
			delta[id] = a.mountRereads(id) - before[id]
		}
		t.Logf("%s: %s mount/umount rounds in %v; the agent's process used %v of CPU (%.0f%% of a core); tables read again: %v",
			name, strings.TrimPrefix(got, "ok "), took.Round(time.Millisecond), cpu.Round(time.Millisecond), 100*cpu.Seconds()/took.Seconds(), delta)
		return delta
	}

	setNS(false) // as a kernel without namespace ids: every report reads every table
	old := flood("every container", nil)
	for _, id := range quiet {
		if old[id] < 10 {
			t.Errorf("without namespace ids: %s read again %d times during the flood, want at its rate", id, old[id])
		}
	}

	setNS(true)
	var marked time.Duration
	fixed := flood("attributed", func() {
		time.Sleep(floodMS / 4 * time.Millisecond)
		start := time.Now()
		victim.doAll(t, "mount /late")
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(procRoot, strconv.Itoa(int(victim.task.Pid())), "root", "late"), &st); err != nil {
			t.Error(err)
			return
		}
		for {
			a.mu.RLock()
			ok := slices.Contains(a.containers["victim"].devs, st.Dev)
			a.mu.RUnlock()
			if ok {
				break
			}
			if time.Since(start) > 5*time.Second {
				t.Error("the victim's mount was never marked during the flood")
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
		marked = time.Since(start)
		victim.doAll(t, "copy /bin/probe /late/drift")
		if got := victim.do(t, "run /late/drift"); got != "eperm" {
			t.Errorf("a drifted exec from a tmpfs mounted during another container's flood: %s, want eperm", got)
		}
	})
	t.Logf("the victim's mount was marked (its device mapped) %v after its mount call began", marked.Round(100*time.Microsecond))
	for _, id := range quiet {
		if fixed[id] != 0 {
			t.Errorf("%s read again %d times during another container's flood, want 0", id, fixed[id])
		}
	}
	if fixed["victim"] == 0 {
		t.Error("the victim's table was not read again after its mount")
	}
	// The flood over, its container is not read again and again.
	n := a.mountRereads("flooder")
	time.Sleep(500 * time.Millisecond)
	if m := a.mountRereads("flooder"); m != n {
		t.Errorf("the flooder's table was read %d more times after its flood ended", m-n)
	}

	// At adoption, a namespace that has not as many mounts after its mark
	// as the table read before (a mount came or went between the two, and
	// no report says so) has its table read again.
	a.mu.RLock()
	vc := a.containers["victim"]
	a.mu.RUnlock()
	total := a.mounts.total.Load()
	a.watchMountNS(vc, -1)
	for start := time.Now(); a.mounts.total.Load() == total; time.Sleep(time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("a table read at adoption that missed a mount was not read again")
		}
	}
}

// ask sends cmd to the probe at sock and returns its answer (from any
// goroutine: no t.Fatal).
func ask(sock, cmd string) string {
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return err.Error()
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	fmt.Fprintln(conn, cmd)
	line, _ := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line)
}

// cpuTime is the CPU this process (the agent) has used, user and system.
func cpuTime(t *testing.T) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pauseMounts waits for the mount tables being read to be read and stops
// any more from being read (or marked) until resume. Holding a.mu instead
// blocked a read that had marked a new mount before taking it, and with it
// the answer to an exec from that mount.
func pauseMounts(a *Agent) (resume func()) {
	for {
		a.mounts.mu.Lock()
		busy := false
		for _, tr := range a.mounts.tracks {
			busy = busy || tr.running
		}
		if !busy {
			return a.mounts.mu.Unlock
		}
		a.mounts.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

// TestMountRoute: which containers a batch of reports has read again. A
// detach goes to the container whose namespace listed the mount, once per
// batch; an attach of a mount no watched namespace has (gone already)
// reads nothing; a container without a namespace id is read at every
// report, and every container after an overflow.
func TestMountRoute(t *testing.T) {
	a, b, old := &container{id: "a"}, &container{id: "b"}, &container{id: "old"}
	now := time.Now()
	f := &mountFlow{owner: map[uint64]*container{}, tracks: map[*container]*mountTrack{
		a: {ns: 1 << 62, added: now}, b: {ns: 1<<62 + 1, added: now}, old: {added: now}}}
	f.setIDs(a, []uint64{10, 11})
	f.setIDs(b, []uint64{20})
	watched := func(*container) bool { return true }
	ids := func(cs []*container) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.id)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		name string
		rs   []fanotify.MountReport
		all  bool
		want []string
	}{
		{"nothing", nil, false, nil},
		{"detaches of a's mounts", []fanotify.MountReport{{ID: 10, Detach: true}, {ID: 11, Detach: true}}, false, []string{"a", "old"}},
		{"a detach of b's, moved", []fanotify.MountReport{{ID: 20, Attach: true, Detach: true}}, false, []string{"b", "old"}},
		{"a mount no namespace has", []fanotify.MountReport{{ID: 1 << 50, Attach: true}}, false, []string{"old"}},
		{"overflow", nil, true, []string{"a", "b", "old"}},
	} {
		if got := ids(f.route(tc.rs, tc.all, watched)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: read again %v, want %v", tc.name, got, tc.want)
		}
	}
	if f.owner[10] != nil || f.owner[20] != b {
		t.Errorf("after the detach of 10 and the move of 20: owners %v, %v; want none and b", f.owner[10], f.owner[20])
	}
}
