package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/policy"
)

func TestDecisions(t *testing.T) { eachBackend(t, testDecisions) }

func testDecisions(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, _ := newStore(t)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	older := &policy.Decision{Policy: "default", PolicyDigest: "sha256:p1", Digest: "sha256:aaa", Time: t0, Pass: true,
		Rules: []policy.RuleResult{{Name: "no-critical", Status: policy.StatusPass}}}
	newer := &policy.Decision{Policy: "default", PolicyDigest: "sha256:p1", Digest: "sha256:aaa", Time: t0.Add(time.Hour), Pass: false,
		Rules: []policy.RuleResult{{Name: "no-critical", Status: policy.StatusFail, Evidence: []string{"CVE-2026-1"}}}}
	for _, d := range []*policy.Decision{newer, older} { // stored out of order
		if err := s.PutDecision(ctx, "sha256:aaa", d); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.LatestDecision(ctx, "sha256:aaa")
	if err != nil {
		t.Fatal(err)
	}
	if got.Pass || !got.Time.Equal(newer.Time) || len(got.Rules) != 1 || got.Rules[0].Evidence[0] != "CVE-2026-1" {
		t.Errorf("LatestDecision = %+v, want the newer, failing one", got)
	}
	if _, err := s.LatestDecision(ctx, "sha256:none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LatestDecision of an unknown digest: %v", err)
	}
}

func TestCertifications(t *testing.T) { eachBackend(t, testCertifications) }

func testCertifications(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, c := newStore(t)
	if err := s.SetCertification(ctx, "sha256:aaa", Certified, ""); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	if err := s.SetCertification(ctx, "sha256:aaa", Revoked, "CVE-2026-1 in openssl"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Certification(ctx, "sha256:aaa")
	if err != nil {
		t.Fatal(err)
	}
	want := Certification{Digest: "sha256:aaa", Status: Revoked, Reason: "CVE-2026-1 in openssl", Updated: c.Now()}
	if got != want {
		t.Errorf("Certification = %+v, want %+v", got, want)
	}
	if err := s.SetCertification(ctx, "sha256:aaa", "maybe", ""); err == nil {
		t.Error("an unknown status was accepted")
	}
	if _, err := s.Certification(ctx, "sha256:none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Certification of an unknown digest: %v", err)
	}
}

func TestRegistries(t *testing.T) { eachBackend(t, testRegistries) }

func testRegistries(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, _ := newStore(t)
	id, err := s.PutRegistry(ctx, Registry{Name: "hub", URL: "https://r.example", Credentials: []byte{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s.PutRegistry(ctx, Registry{Name: "hub", URL: "https://r2.example", Credentials: []byte{4}})
	if err != nil {
		t.Fatal(err)
	}
	if id2 != id {
		t.Errorf("updating a registry changed its id: %d -> %d", id, id2)
	}
	r, err := s.Registry(ctx, "hub")
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != id || r.URL != "https://r2.example" || string(r.Credentials) != "\x04" {
		t.Errorf("Registry = %+v", r)
	}
	for _, n := range []string{"shop/web", "shop/api", "shop/api"} {
		if err := s.AddRepository(ctx, id, n); err != nil {
			t.Fatal(err)
		}
	}
	repos, err := s.Repositories(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 2 || repos[0] != "shop/api" || repos[1] != "shop/web" {
		t.Errorf("Repositories = %q", repos)
	}
	if err := s.AddRepository(ctx, id+100, "x"); err == nil {
		t.Error("a repository of an unknown registry was accepted (foreign keys off?)")
	}
	if _, err := s.Registry(ctx, "none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Registry of an unknown name: %v", err)
	}
	if _, err := s.PutRegistry(ctx, Registry{Name: "corp", URL: "https://c.example"}); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListRegistries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Name != "corp" || all[1].Name != "hub" || all[1].ID != id || all[1].URL != "https://r2.example" || all[0].Created.IsZero() {
		t.Errorf("ListRegistries = %+v", all)
	}
}

func TestRollbackTarget(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore storeFactory) {
		s, _ := newStore(t)
		ctx := context.Background()
		day := func(d int) time.Time { return time.Date(2026, 1, d, 0, 0, 0, 0, time.UTC) }
		for i, st := range []string{Certified, Certified, Revoked} { // oldest first
			d := fmt.Sprintf("sha256:%d", i)
			s.PutImage(ctx, Image{Digest: d, Repository: "r/app", Created: day(i + 1)})
			s.SetCertification(ctx, d, st, "")
		}
		s.PutImage(ctx, Image{Digest: "sha256:other", Repository: "r/other", Created: day(9)})
		s.SetCertification(ctx, "sha256:other", Certified, "")
		if got, err := s.RollbackTarget(ctx, "r/app"); err != nil || got != "sha256:1" {
			t.Errorf("RollbackTarget = %q, %v; want sha256:1 (the newest certified)", got, err)
		}
		if got, err := s.RollbackTarget(ctx, "r/none"); err != nil || got != "" {
			t.Errorf("RollbackTarget of an unknown repository = %q, %v", got, err)
		}
	})
}
