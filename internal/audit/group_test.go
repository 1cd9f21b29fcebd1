package audit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
)

// TestGroupBatchesAndReportsEachBatch: concurrent appends share commits
// (fewer commits than entries while the first is held), every entry is
// committed exactly once before its Append returns, and a failed batch
// fails exactly the callers whose entries it held.
func TestGroupBatchesAndReportsEachBatch(t *testing.T) {
	var (
		mu      sync.Mutex
		commits [][]audit.Entry
		hold    = make(chan struct{})
		first   = true
	)
	g := &audit.Group{Commit: func(ctx context.Context, es []audit.Entry) error {
		mu.Lock()
		wait := first
		first = false
		mu.Unlock()
		if wait {
			<-hold
		}
		mu.Lock()
		defer mu.Unlock()
		commits = append(commits, es)
		for _, e := range es {
			if e.Object == "fail" {
				return errors.New("disk full")
			}
		}
		return nil
	}}
	ctx := context.Background()
	firstDone := make(chan error, 1)
	go func() { firstDone <- g.Append(ctx, audit.Entry{Object: "first"}) }()
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			obj := fmt.Sprint(i)
			if i == 7 {
				obj = "fail"
			}
			errs[i] = g.Append(ctx, audit.Entry{Object: obj})
		}()
	}
	// Let the others queue behind the held first commit, then release it.
	time.Sleep(50 * time.Millisecond)
	close(hold)
	firstErr := <-firstDone
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	seen := map[string]int{}
	failedBatch := map[string]bool{}
	for _, b := range commits {
		bad := false
		for _, e := range b {
			seen[e.Object]++
			bad = bad || e.Object == "fail"
		}
		for _, e := range b {
			failedBatch[e.Object] = bad
		}
	}
	if len(seen) != n+1 {
		t.Fatalf("committed %d distinct entries, want %d", len(seen), n+1)
	}
	for obj, c := range seen {
		if c != 1 {
			t.Errorf("%s committed %d times", obj, c)
		}
	}
	if (firstErr != nil) != failedBatch["first"] {
		t.Errorf("first: err %v, its batch failed: %v", firstErr, failedBatch["first"])
	}
	for i, err := range errs {
		obj := fmt.Sprint(i)
		if i == 7 {
			obj = "fail"
		}
		if (err != nil) != failedBatch[obj] {
			t.Errorf("entry %s: err %v, its batch failed: %v", obj, err, failedBatch[obj])
		}
	}
	if len(commits) >= n+1 {
		t.Errorf("%d commits for %d entries: not batched", len(commits), n+1)
	}
}

// TestGroupCancelledCallerDoesNotFailOthers: the caller that started the
// committer gives up; the batch still commits for the others, not under
// the cancelled context.
func TestGroupCancelledCallerDoesNotFailOthers(t *testing.T) {
	hold := make(chan struct{})
	var got []string
	var mu sync.Mutex
	g := &audit.Group{Commit: func(ctx context.Context, es []audit.Entry) error {
		<-hold
		if err := ctx.Err(); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range es {
			got = append(got, e.Object)
		}
		return nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	leader := make(chan error, 1)
	go func() { leader <- g.Append(ctx, audit.Entry{Object: "leader"}) }()
	other := make(chan error, 1)
	go func() { other <- g.Append(context.Background(), audit.Entry{Object: "other"}) }()
	cancel()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled leader: %v, want context.Canceled", err)
	}
	close(hold)
	if err := <-other; err != nil {
		t.Fatalf("other caller: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("committed %v, want leader and other", got)
	}
}
