package store

import (
	"context"
	"testing"
)

// Attachments are replaced per source tag, listed by subject, pruned when
// their tag goes, on both backends.
func TestAttachments(t *testing.T) { eachBackend(t, testAttachments) }

func testAttachments(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, c := newStore(t)
	const repo, img = "r.example/app", "sha256:aa"
	sig := Attachment{Artifact: "sha256:s1", Layer: "sha256:l1", Subject: img, Kind: "signature", KeyID: "sha256:k", Verified: true}
	att := Attachment{Artifact: "sha256:a1", Layer: "sha256:l2", Subject: img, Kind: "attestation", PredicateType: "https://cyclonedx.org/bom"}
	if err := s.ReplaceAttachments(ctx, repo, "sha256-aa.sig", []Attachment{sig}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceAttachments(ctx, repo, "sha256-aa.att", []Attachment{att}); err != nil {
		t.Fatal(err)
	}
	// The .sig tag moved: a second signature appended.
	sig2 := sig
	sig2.Artifact, sig2.Layer = "sha256:s2", "sha256:l3"
	if err := s.ReplaceAttachments(ctx, repo, "sha256-aa.sig", []Attachment{sig, sig2}); err != nil {
		t.Fatal(err)
	}
	if d, err := s.AttachedArtifact(ctx, repo, "sha256-aa.sig"); err != nil || d != "sha256:s1" && d != "sha256:s2" {
		t.Errorf("AttachedArtifact = %q, %v", d, err)
	}
	if d, _ := s.AttachedArtifact(ctx, repo, "1"); d != "" {
		t.Errorf("AttachedArtifact of an image tag = %q", d)
	}
	got, err := s.Attachments(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Kind != "attestation" || !got[1].Verified || got[1].KeyID != "sha256:k" ||
		got[1].Repository != repo || got[1].Source != "sha256-aa.sig" || !got[1].Seen.Equal(c.Now()) {
		t.Errorf("Attachments = %+v", got)
	}
	if n, err := s.PruneAttachments(ctx, repo, []string{"sha256-aa.sig"}); err != nil || n != 1 {
		t.Errorf("PruneAttachments = %d, %v", n, err)
	}
	if got, _ := s.Attachments(ctx, img); len(got) != 2 {
		t.Errorf("after pruning the .att tag: %+v", got)
	}
	if got, err := s.Attachments(ctx, "sha256:none"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("Attachments of an unknown digest = %#v, %v; want empty", got, err)
	}
}
