package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/spool"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/tokenfile"
)

// projectedVolume writes token the way the kubelet's atomic writer updates
// a projected volume: a new timestamped directory, the ..data symlink
// swapped to it by a rename, and token a symlink through ..data.
type projectedVolume struct {
	dir string
	n   int
}

func (v *projectedVolume) write(t *testing.T, token string) {
	t.Helper()
	v.n++
	ts := fmt.Sprintf("..2026_12_03_15_00_%02d.%d", v.n, v.n)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.dir, ts, "token"), []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if v.n == 1 {
		if err := os.Symlink(filepath.Join("..data", "token"), filepath.Join(v.dir, "token")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSenderTakesRotatedToken: the agent's token file is replaced under it
// (as the kubelet rotates a projected service account token) and the old
// token stops working on the server: the running sender goes on with the
// new one, without a restart. With a long re-read period it is the 401
// that makes it read the file again, at once; with a short one it reads
// the new token before the old one is refused, and no request fails.
func TestSenderTakesRotatedToken(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := httptest.NewServer(api.New(st, api.NewAuditor(st, ""), nil, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	ctx := t.Context()
	token := func(name string) (int64, string) {
		id, tok, err := st.CreateToken(ctx, name, store.RoleOperator)
		if err != nil {
			t.Fatal(err)
		}
		return id, tok
	}

	for _, tc := range []struct {
		name  string
		every time.Duration
	}{
		{"on 401", time.Hour},
		{"every period", 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vol := &projectedVolume{dir: t.TempDir()}
			id1, tok1 := token("agent-" + tc.name + "-1")
			_, tok2 := token("agent-" + tc.name + "-2")
			vol.write(t, tok1+"\n")
			tokens, err := tokenfile.Open(filepath.Join(vol.dir, "token"), tc.every)
			if err != nil {
				t.Fatal(err)
			}
			sp, err := spool.Open(t.TempDir(), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			s := NewSender(SenderConfig{URL: srv.URL, Tokens: tokens, Node: "node-1", Spool: sp, HeartbeatEvery: 50 * time.Millisecond,
				Heartbeat: func() agentproto.Heartbeat {
					return agentproto.Heartbeat{Mode: "detect", State: agentproto.StateDetectingOnly}
				}})
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- s.Run(rctx) }()
			defer func() { cancel(); <-done }()
			beatAfter := func(at time.Time) {
				t.Helper()
				waitFor(t, "a heartbeat after "+at.Format(time.StampMilli), func() bool { return s.Stats().LastHeartbeat.After(at) })
			}
			beatAfter(time.Now())

			vol.write(t, tok2)
			if tc.every < time.Hour {
				time.Sleep(2 * tc.every) // read by the period, before the old token is refused
			}
			if err := st.RevokeToken(ctx, id1); err != nil {
				t.Fatal(err)
			}
			revoked := time.Now()
			beatAfter(revoked)
			if tokens.Token() != tok2 {
				t.Error("the sender's token is not the new one")
			}
			last := s.Stats().LastError
			if refused := last != ""; refused != (tc.every == time.Hour) {
				t.Errorf("last error %q: a 401 expected only when the period is long", last)
			}
			t.Logf("heartbeat with the rotated token %s after the old one was revoked (last error %q)", s.Stats().LastHeartbeat.Sub(revoked).Round(time.Millisecond), last)
		})
	}
}
