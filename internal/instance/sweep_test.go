package instance_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/instance"
)

// The server task: a changed collateral directory revokes, a quiet
// instance goes stale, a broken directory changes nothing.
func TestSweeperRun(t *testing.T) {
	w := newWorld(t, sqliteOnly, instance.Policy{ReattestEvery: time.Hour})
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "snp"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "snp", "Milan.pem"), w.snp.Roots()["Milan"], 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := w.register(t, "a", "", w.guest, true)
	mustStatus(t, in, err, instance.Verified, "")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	sw := &instance.Sweeper{Tracker: w.tr, Store: w.st, Interval: 10 * time.Millisecond, CollateralDir: dir, Base: attest.Options{Now: w.clk.Now}}
	go func() { done <- sw.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitStatus := func(id string, want instance.Status) instance.Instance {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if got, _ := w.tr.Get(id); got.Status == want {
				return got
			}
			time.Sleep(10 * time.Millisecond)
		}
		got, _ := w.tr.Get(id)
		t.Fatalf("%s: %s (%s), want %s", id, got.Status, got.Detail, want)
		return got
	}
	time.Sleep(50 * time.Millisecond)
	if got, _ := w.tr.Get("a"); got.Status != instance.Verified {
		t.Fatalf("the unchanged collateral revoked: %+v", got)
	}
	// A malformed policy is an error, not a policy with checks missing.
	os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte("minSnpTcb: {snp: 9}\nallowDebugg: true\n"), 0o644)
	time.Sleep(50 * time.Millisecond)
	if got, _ := w.tr.Get("a"); got.Status != instance.Verified {
		t.Fatalf("a broken policy file changed the instance: %+v", got)
	}
	os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte("minSnpTcb: {bootloader: 3, snp: 9, microcode: 115}\n"), 0o644)
	got := waitStatus("a", instance.Revoked)
	if got.Reason != string(attest.ReasonTCBOutOfDate) {
		t.Fatalf("revoked for %s", got.Reason)
	}

	os.Remove(filepath.Join(dir, "policy.yaml"))
	for deadline := time.Now().Add(10 * time.Second); w.tr.Verifier().Policy().MinSNPTCB != (attest.SNPTCB{}); {
		if time.Now().After(deadline) {
			t.Fatal("the policy's removal was not picked up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	in, err = w.register(t, "b", "", w.guest, true)
	mustStatus(t, in, err, instance.Verified, "")
	w.clk.Add(2 * time.Hour)
	waitStatus("b", instance.Stale)
}
