package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/trust"
)

// TestLongPollsPerToken: one token holds at most maxPollsPerToken long
// polls of the change feed; the next is 429 at once, and another token's
// poll is still served, so one token cannot fill the feed's waiters.
func TestLongPollsPerToken(t *testing.T) {
	f := newIdentityAPI(t)
	f.h.UseLimits(Limits{Rate: 1000, Burst: 1000})
	feed := f.h.identity.cfg.Feed.(*trust.Feed)
	code, body := f.call("GET", agentproto.IdentityChangesPath, f.op, nil)
	var first agentproto.Changes
	json.Unmarshal(body, &first)
	if code != http.StatusOK {
		t.Fatalf("after=0: %d %s", code, body)
	}
	path := fmt.Sprintf("%s?after=%d&wait=2", agentproto.IdentityChangesPath, first.Seq)
	var wg sync.WaitGroup
	codes := make([]int, maxPollsPerToken)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = f.call("GET", path, f.op, nil)
		}()
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	for feed.Waiting() < maxPollsPerToken && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := feed.Waiting(); n != maxPollsPerToken {
		t.Fatalf("%d polls waiting, want %d", n, maxPollsPerToken)
	}
	if code, body := f.call("GET", path, f.op, nil); code != http.StatusTooManyRequests {
		t.Errorf("poll %d of one token: %d %s, want 429", maxPollsPerToken+1, code, body)
	}
	_, other, _ := f.st.CreateToken(t.Context(), "agent-2", store.RoleOperator)
	if code, body := f.call("GET", agentproto.IdentityChangesPath, other, nil); code != http.StatusOK {
		t.Errorf("another token's poll: %d %s", code, body)
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("poll %d: %d", i, c)
		}
	}
	// The slots are free again.
	if code, body := f.call("GET", agentproto.IdentityChangesPath, f.op, nil); code != http.StatusOK {
		t.Errorf("after the polls ended: %d %s", code, body)
	}
}
