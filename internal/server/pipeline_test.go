package server

import (
	"testing"

	"github.com/bulwark-sec/bulwark/internal/policy"
)

func TestLabeledBase(t *testing.T) {
	for _, tc := range []struct {
		labels map[string]string
		want   string
	}{
		{nil, ""},
		{map[string]string{"org.opencontainers.image.base.name": "docker.io/library/debian:12"}, "docker.io/library/debian:12"},
		{map[string]string{"org.opencontainers.image.base.name": "registry:5000/base/debian:12", "org.opencontainers.image.base.digest": "sha256:ab"}, "registry:5000/base/debian@sha256:ab"},
		{map[string]string{"org.opencontainers.image.base.digest": "sha256:ab"}, ""},
	} {
		if got := labeledBase(tc.labels); got != tc.want {
			t.Errorf("labeledBase(%v) = %q, want %q", tc.labels, got, tc.want)
		}
	}
}

func TestDecisionReason(t *testing.T) {
	d := &policy.Decision{Rules: []policy.RuleResult{
		{Name: "vulnerabilities", Status: policy.StatusFail, Evidence: []string{"CVE-1 in a 1", "CVE-2 in b 2"}},
		{Name: "non-root", Status: policy.StatusPass},
		{Name: "lean", Status: policy.StatusFail},
	}}
	want := "vulnerabilities: CVE-1 in a 1 (and 1 more); lean"
	if got := decisionReason(d); got != want {
		t.Errorf("decisionReason = %q, want %q", got, want)
	}
}
