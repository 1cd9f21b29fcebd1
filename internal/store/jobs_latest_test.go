package store

import (
	"errors"
	"testing"
	"time"
)

// LatestJob finds the newest job of a kind whose payload holds the parts
// in order, whatever its state, on both backends.
func TestLatestJob(t *testing.T) {
	eachBackend(t, func(t *testing.T, open storeFactory) {
		s, _ := open(t)
		ctx := t.Context()
		payloads := []string{
			`{"trigger":"revoked","event":"certification-1","digest":"sha256:aa"}`,
			`{"trigger":"drift","event":"runtime-2","digest":"sha256:aa"}`,
			`{"trigger":"revoked","event":"certification-3","digest":"sha256:bb"}`,
			`{"trigger":"revoked","event":"certification-4","digest":"sha256:aa"}`,
		}
		var ids []int64
		for _, p := range payloads {
			id, err := s.EnqueueJob(ctx, "respond", []byte(p), time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if _, err := s.EnqueueJob(ctx, "other", []byte(payloads[3]+" "), time.Time{}); err != nil {
			t.Fatal(err)
		}
		j, err := s.ClaimJob(ctx, "w", "respond")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		got, err := s.LatestJob(ctx, "respond", `"trigger":"revoked"`, `"digest":"sha256:aa"`)
		if err != nil || got.ID != ids[3] || string(got.Payload) != payloads[3] {
			t.Fatalf("latest revoked aa: %+v %v, want job %d", got, err, ids[3])
		}
		got, err = s.LatestJob(ctx, "respond", `"trigger":"revoked"`, `"digest":"sha256:bb"`)
		if err != nil || got.ID != ids[2] {
			t.Fatalf("latest revoked bb: %+v %v", got, err)
		}
		if _, err := s.LatestJob(ctx, "respond", `"digest":"sha256:cc"`); !errors.Is(err, ErrNotFound) {
			t.Fatalf("none: %v, want ErrNotFound", err)
		}
		if _, err := s.LatestJob(ctx, "respond", `"digest":"%"`); err == nil {
			t.Fatal("a wildcard was accepted")
		}
	})
}
