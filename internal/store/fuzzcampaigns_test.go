package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

func TestFuzzCampaigns(t *testing.T) { eachBackend(t, testFuzzCampaigns) }

func testFuzzCampaigns(t *testing.T, newStore storeFactory) {
	s, _ := newStore(t)
	ctx := context.Background()
	reg := APIRegistration{Application: "shop", OpenAPI: "https://api.example.com/openapi.json", Target: "https://api.example.com",
		AllowedHosts: []string{"api.example.com"}, AuthHeader: "Authorization", AuthSealed: []byte("sealed")}
	if _, err := s.PutAPIRegistration(ctx, reg); !errors.Is(err, ErrNotFound) {
		t.Fatalf("registering the API of a missing application: %v; want ErrNotFound", err)
	}
	if _, err := s.PutApplication(ctx, Application{Name: "shop", Lifecycle: LifecycleActive, Repositories: []string{"shop/*"}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.PutAPIRegistration(ctx, reg)
	if err != nil || got.Target != reg.Target || string(got.AuthSealed) != "sealed" || len(got.AllowedHosts) != 1 || got.Updated.IsZero() {
		t.Fatalf("PutAPIRegistration: %+v, %v", got, err)
	}
	reg.Target, reg.AuthSealed, reg.AuthHeader = "https://api.example.com/v2", nil, ""
	if got, err = s.PutAPIRegistration(ctx, reg); err != nil || got.Target != reg.Target || got.AuthSealed != nil {
		t.Fatalf("replacing the registration: %+v, %v", got, err)
	}

	c1, err := s.CreateFuzzCampaign(ctx, "shop", "token:1", json.RawMessage(`{"maxRequests":10}`))
	if err != nil || c1.ID == 0 || c1.State != CampaignQueued {
		t.Fatalf("CreateFuzzCampaign: %+v, %v", c1, err)
	}
	// One queued or running campaign per application.
	if _, err := s.CreateFuzzCampaign(ctx, "shop", "token:1", json.RawMessage(`{}`)); !errors.Is(err, ErrCampaignActive) {
		t.Fatalf("a second campaign while one is queued: %v; want ErrCampaignActive", err)
	}
	if err := s.StartFuzzCampaign(ctx, c1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateFuzzCampaign(ctx, "shop", "token:1", json.RawMessage(`{}`)); !errors.Is(err, ErrCampaignActive) {
		t.Fatalf("a second campaign while one is running: %v; want ErrCampaignActive", err)
	}
	if err := s.FinishFuzzCampaign(ctx, c1.ID, CampaignRunning, 0, nil, ""); err == nil {
		t.Fatal("finishing in state running succeeded")
	}
	if err := s.FinishFuzzCampaign(ctx, c1.ID, CampaignDone, 3, json.RawMessage(`{"findings":[1,2,3]}`), ""); err != nil {
		t.Fatal(err)
	}
	c2, err := s.CreateFuzzCampaign(ctx, "shop", "token:1", json.RawMessage(`{}`))
	if err != nil {
		t.Fatalf("a campaign after the first ended: %v", err)
	}
	c, err := s.FuzzCampaign(ctx, "shop", c1.ID)
	if err != nil || c.State != CampaignDone || c.Findings != 3 || c.Started == nil || c.Finished == nil || string(c.Report) != `{"findings":[1,2,3]}` {
		t.Fatalf("FuzzCampaign: %+v, %v", c, err)
	}
	if _, err := s.FuzzCampaign(ctx, "other", c1.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a campaign read under another application: %v", err)
	}
	list, err := s.FuzzCampaigns(ctx, "shop", 10)
	if err != nil || len(list) != 2 || list[0].ID != c2.ID || list[1].Report != nil {
		t.Fatalf("FuzzCampaigns: %+v, %v; want newest first, no reports", list, err)
	}

	// The registration goes with its application; the campaigns stay.
	if err := s.DeleteApplication(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.APIRegistration(ctx, "shop"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the registration outlived its application: %v", err)
	}
	if err := s.DeleteAPIRegistration(ctx, "shop"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteAPIRegistration of none: %v", err)
	}
	if _, err := s.FuzzCampaign(ctx, "", c1.ID); err != nil {
		t.Fatalf("the campaign went with the application: %v", err)
	}
}
