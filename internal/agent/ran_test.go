package agent

import (
	"strconv"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/allowlist"
)

// TestRanLogBounded: programs are counted per content (or per path from
// the sensor), listed most execs first; past the bound, execs of new
// programs are counted, not listed; a snapshot cut by the heartbeat's
// budget counts what it leaves out; a heartbeat of it validates.
func TestRanLogBounded(t *testing.T) {
	var r ranLog
	a, b := allowlist.Digest{1}, allowlist.Digest{2}
	r.exec(a, "/bin/a")
	r.exec(b, "/bin/b")
	r.exec(b, "/usr/bin/b-again")
	r.sensed("/bin/c")
	got, dropped := r.snapshot(agentproto.MaxRanPerContainer)
	if len(got) != 3 || dropped != 0 || got[0].Digest != b.String() || got[0].Count != 2 || got[0].Path != "/bin/b" {
		t.Fatalf("snapshot: %+v, %d", got, dropped)
	}
	for i := range agentproto.MaxRanPerContainer + 10 {
		r.sensed("/tmp/x" + strconv.Itoa(i))
	}
	got, dropped = r.snapshot(agentproto.MaxRanPerContainer)
	if len(got) != agentproto.MaxRanPerContainer || dropped != 13 {
		t.Fatalf("past the bound: %d listed, %d dropped; want %d and 13", len(got), dropped, agentproto.MaxRanPerContainer)
	}
	got, dropped = r.snapshot(1)
	if len(got) != 1 || dropped != 13+uint64(agentproto.MaxRanPerContainer-1) {
		t.Fatalf("cut to 1: %d listed, %d dropped", len(got), dropped)
	}
	hb := agentproto.Heartbeat{Node: "n", Mode: "detect", State: agentproto.StateDetectingOnly,
		Containers: []agentproto.Container{{ID: "c", Ran: got, RanDropped: dropped}}}
	if err := hb.Validate(); err != nil {
		t.Fatal(err)
	}
	hb.Containers[0].Ran = []agentproto.Ran{{Path: "/x", Count: 1, First: time.Now(), Last: time.Now().Add(-time.Hour)}}
	if err := hb.Validate(); err == nil {
		t.Error("a last exec before the first was accepted")
	}
}

// BenchmarkRanExec is the cost an allowed exec pays, after its answer, to
// be counted in what ran (a known program: one map lookup under a lock).
func BenchmarkRanExec(b *testing.B) {
	var r ranLog
	d := allowlist.Digest{1}
	for b.Loop() {
		r.exec(d, "/bin/a")
	}
}
