package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
)

func TestListCertifications(t *testing.T) { eachBackend(t, testListCertifications) }

func testListCertifications(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, c := newStore(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	const repo = "registry.local/shop/api"
	must(s.PutImage(ctx, Image{Digest: "sha256:aaa", Repository: repo}))
	must(s.PutImage(ctx, Image{Digest: "sha256:bbb", Repository: repo}))
	must(s.SetTag(ctx, repo, "1.4", "sha256:aaa"))
	must(s.SetTag(ctx, repo, "latest", "sha256:aaa"))
	must(s.SetCertification(ctx, "sha256:aaa", Certified, ""))
	must(s.SetCertification(ctx, "sha256:orphan", NotCertified, "never scanned"))
	t0 := c.Now()

	all, err := s.ListCertifications(ctx, time.Time{})
	must(err)
	if len(all) != 2 {
		t.Fatalf("ListCertifications(zero) = %+v, want 2 entries", all)
	}
	var a CertificationListing
	for _, l := range all {
		if l.Digest == "sha256:aaa" {
			a = l
		}
	}
	if a.Repository != repo || !slices.Equal(a.Tags, []string{"1.4", "latest"}) || a.Status != Certified || !a.Updated.Equal(t0) {
		t.Errorf("aaa = %+v, want repository %s, tags [1.4 latest], certified at %s", a, repo, t0)
	}

	// Nothing changed since t0.
	got, err := s.ListCertifications(ctx, t0)
	must(err)
	if len(got) != 0 {
		t.Errorf("ListCertifications(t0) = %+v, want none", got)
	}

	// A revocation comes in the next poll, with its reason.
	c.Advance(time.Minute)
	must(s.SetCertification(ctx, "sha256:aaa", Revoked, "CVE-2026-1 in openssl"))
	got, err = s.ListCertifications(ctx, t0)
	must(err)
	if len(got) != 1 || got[0].Digest != "sha256:aaa" || got[0].Status != Revoked || got[0].Reason != "CVE-2026-1 in openssl" {
		t.Errorf("after revocation: %+v, want aaa revoked", got)
	}
	t1 := c.Now()

	// A tag moving to a certified digest is a change of that digest.
	c.Advance(time.Minute)
	must(s.SetCertification(ctx, "sha256:bbb", Certified, ""))
	c.Advance(time.Minute)
	must(s.SetTag(ctx, repo, "latest", "sha256:bbb"))
	got, err = s.ListCertifications(ctx, t1)
	must(err)
	if len(got) != 1 || got[0].Digest != "sha256:bbb" || !slices.Equal(got[0].Tags, []string{"latest"}) || !got[0].Updated.Equal(c.Now()) {
		t.Errorf("after the tag moved: %+v, want bbb with tag latest updated %s", got, c.Now())
	}
}

// CertificationChanges lists the digests whose certification changed in
// an audit entry after a sequence number; CertificationsOf their state.
func TestCertificationChanges(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore storeFactory) {
		s, _ := newStore(t)
		ctx := context.Background()
		if ds, last, err := s.CertificationChanges(ctx, 0); err != nil || ds != nil || last != 0 {
			t.Fatalf("empty log: %v %d %v", ds, last, err)
		}
		for _, d := range []string{"sha256:a", "sha256:b"} {
			s.PutImage(ctx, Image{Digest: d, Repository: "r/app"})
			s.SetCertification(ctx, d, Certified, "")
		}
		// An unrelated audited change moves the sequence only.
		if _, err := s.Audited(ctx, func(*Store) ([]audit.Entry, error) {
			return []audit.Entry{{Actor: "t", Action: "registry.put", Object: "registry:x"}}, nil
		}); err != nil {
			t.Fatal(err)
		}
		_, cursor, _ := s.CertificationChanges(ctx, 0)
		if ok, err := s.Revoke(ctx, "sha256:b", "CVE-1", "t"); err != nil || !ok {
			t.Fatal(err)
		}
		ds, last, err := s.CertificationChanges(ctx, cursor)
		if err != nil || len(ds) != 1 || ds[0] != "sha256:b" || last != cursor+1 {
			t.Fatalf("after the revocation: %v, last %d (cursor %d), %v", ds, last, cursor, err)
		}
		ls, err := s.CertificationsOf(ctx, ds)
		if err != nil || len(ls) != 1 || ls[0].Status != Revoked || ls[0].Repository != "r/app" {
			t.Errorf("CertificationsOf = %+v, %v", ls, err)
		}
		if ds, _, _ := s.CertificationChanges(ctx, last); len(ds) != 0 {
			t.Errorf("nothing after the last seq: %v", ds)
		}
	})
}
