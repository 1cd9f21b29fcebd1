package store

import (
	"testing"
	"time"
)

// A response is recorded once under its key; the limits count what was
// taken in the window, per namespace and per owner, never what was
// skipped.
func TestResponsesRecordOnceAndCount(t *testing.T) {
	eachBackend(t, func(t *testing.T, open storeFactory) {
		s, c := open(t)
		ctx := t.Context()
		r := Response{Key: "drift|uid-1", Trigger: "drift", Action: "replace", State: ResponsePlanned, Namespace: "shop",
			Pod: "web-1", PodUID: "uid-1", Owner: "Deployment/web", Node: "n1", Container: "c1", Image: "sha256:a", Reason: "refused"}
		got, created, err := s.RecordResponse(ctx, r)
		if err != nil || !created || got.ID == 0 {
			t.Fatalf("record: %+v %v %v", got, created, err)
		}
		again, created, err := s.RecordResponse(ctx, Response{Key: r.Key, Trigger: "drift", Action: "alert", State: ResponseDone})
		if err != nil || created || again.ID != got.ID || again.Action != "replace" || again.State != ResponsePlanned || again.PodUID != "uid-1" {
			t.Fatalf("recorded twice or changed: %+v %v %v", again, created, err)
		}
		if err := s.FinishResponse(ctx, got.ID, ResponseDone, "deleted"); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishResponse(ctx, 9999, ResponseDone, ""); err == nil {
			t.Error("finishing an unknown response succeeded")
		}
		if _, _, err := s.RecordResponse(ctx, Response{Trigger: "drift"}); err == nil {
			t.Error("a response without a key was recorded")
		}
		if _, _, err := s.RecordResponse(ctx, Response{Key: "k", Trigger: "drift", Action: "alert", State: "maybe"}); err == nil {
			t.Error("an unknown state was recorded")
		}
		s.RecordResponse(ctx, Response{Key: "drift|uid-2", Trigger: "drift", Action: "replace", State: ResponseSkipped, Namespace: "shop", Owner: "Deployment/web"})
		s.RecordResponse(ctx, Response{Key: "drift|uid-3", Trigger: "drift", Action: "replace", State: ResponseDone, Namespace: "shop", Owner: "Deployment/api"})
		s.RecordResponse(ctx, Response{Key: "drift|uid-4", Trigger: "drift", Action: "replace", State: ResponseDone, Namespace: "other", Owner: "Deployment/web"})
		since := c.Now().Add(-time.Minute)
		for _, tc := range []struct {
			ns, owner string
			want      int
		}{{"shop", "", 2}, {"shop", "Deployment/web", 1}, {"", "Deployment/web", 2}, {"other", "", 1}, {"none", "", 0}} {
			if n, err := s.CountResponses(ctx, tc.ns, tc.owner, "replace", since); err != nil || n != tc.want {
				t.Errorf("count %q %q: %d %v, want %d", tc.ns, tc.owner, n, err, tc.want)
			}
		}
		if n, _ := s.CountResponses(ctx, "shop", "", "replace", c.Now().Add(time.Minute)); n != 0 {
			t.Errorf("count after the window: %d", n)
		}
		page, err := s.ResponsesPage(ctx, "shop", 0, 2)
		if err != nil || len(page) != 2 || page[0].Key != "drift|uid-3" || page[1].Key != "drift|uid-2" {
			t.Fatalf("page: %+v %v", page, err)
		}
		rest, err := s.ResponsesPage(ctx, "shop", page[1].ID, 10)
		if err != nil || len(rest) != 1 || rest[0].Detail != "deleted" || rest[0].Finished.IsZero() {
			t.Errorf("second page: %+v %v", rest, err)
		}
	})
}
