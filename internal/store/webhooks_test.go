package store

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestWebhooks(t *testing.T) { eachBackend(t, testWebhooks) }

func testWebhooks(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, c := newStore(t)
	id, err := s.PutWebhook(ctx, Webhook{Name: "ops", URL: "https://hooks.example/…", Kind: WebhookSlack, Secret: []byte{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	created := c.Now()
	c.Advance(time.Minute)
	// Put again under the same name: same id, new fields, created kept.
	id2, err := s.PutWebhook(ctx, Webhook{Name: "ops", URL: "https://ci.example/hook", Kind: WebhookGeneric,
		Secret: []byte{4, 5}, Events: []string{"certification.revoked", "scan.failed"}})
	if err != nil || id2 != id {
		t.Fatalf("PutWebhook again = %d, %v; want %d", id2, err, id)
	}
	w, err := s.Webhook(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if w.ID != id || w.URL != "https://ci.example/hook" || w.Kind != WebhookGeneric || !bytes.Equal(w.Secret, []byte{4, 5}) ||
		!slices.Equal(w.Events, []string{"certification.revoked", "scan.failed"}) || !w.Created.Equal(created) {
		t.Errorf("Webhook = %+v", w)
	}
	if !w.Wants("scan.failed") || w.Wants("image.new") {
		t.Errorf("Wants with events %v is wrong", w.Events)
	}
	if byID, err := s.WebhookByID(ctx, id); err != nil || byID.Name != "ops" {
		t.Errorf("WebhookByID = %+v, %v", byID, err)
	}
	if _, err := s.PutWebhook(ctx, Webhook{Name: "all", URL: "https://x.example", Kind: WebhookGeneric}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutWebhook(ctx, Webhook{Name: "bad", URL: "https://x.example", Kind: "email"}); err == nil {
		t.Error("PutWebhook accepted kind email")
	}
	list, err := s.ListWebhooks(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "all" || list[1].Name != "ops" {
		t.Fatalf("ListWebhooks = %+v, %v", list, err)
	}
	if len(list[0].Events) != 0 || !list[0].Wants("image.new") {
		t.Errorf("a webhook without events should want all: %+v", list[0])
	}
	if err := s.DeleteWebhook(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWebhook(ctx, "ops"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting twice: %v, want ErrNotFound", err)
	}
	if _, err := s.Webhook(ctx, "ops"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Webhook after delete: %v", err)
	}
	if _, err := s.WebhookByID(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("WebhookByID after delete: %v", err)
	}
}

func TestListJobsAndAbandon(t *testing.T) { eachBackend(t, testListJobsAndAbandon) }

func testListJobsAndAbandon(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, _ := newStore(t)
	var ids []int64
	for range 3 {
		id, err := s.EnqueueJob(ctx, "notify", []byte(`{}`), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := s.EnqueueJob(ctx, "scan", nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	j, err := s.ClaimJob(ctx, "w", "notify")
	if err != nil || j.ID != ids[0] {
		t.Fatalf("ClaimJob = %+v, %v", j, err)
	}
	if err := s.AbandonJob(ctx, j, errors.New("POST https://x.example: 404 Not Found")); err != nil {
		t.Fatal(err)
	}
	if err := s.AbandonJob(ctx, j, errors.New("again")); !errors.Is(err, ErrClaimLost) {
		t.Errorf("abandoning a finished job: %v, want ErrClaimLost", err)
	}
	all, err := s.ListJobs(ctx, "notify", "", 0)
	if err != nil || len(all) != 3 || all[0].ID != ids[2] || all[2].ID != ids[0] {
		t.Fatalf("ListJobs(notify) = %+v, %v; want 3, newest first", all, err)
	}
	failed, err := s.ListJobs(ctx, "notify", JobFailed, 10)
	if err != nil || len(failed) != 1 || failed[0].ID != ids[0] || failed[0].Attempts != 1 ||
		failed[0].Error != "POST https://x.example: 404 Not Found" {
		t.Errorf("ListJobs(notify, failed) = %+v, %v", failed, err)
	}
	queued, err := s.ListJobs(ctx, "notify", JobQueued, 1)
	if err != nil || len(queued) != 1 || queued[0].ID != ids[2] {
		t.Errorf("ListJobs(notify, queued, 1) = %+v, %v", queued, err)
	}
}
