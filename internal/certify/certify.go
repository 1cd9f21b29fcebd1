package certify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-sec/bulwark/internal/assess"
	"github.com/bulwark-sec/bulwark/internal/report"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

// Predicate types of the attestations a certification carries. The SBOM
// and scan types are the ones cosign's --type cyclonedx and --type vuln
// use; the decision's is sign.DecisionPredicateType.
const (
	PredicateSBOM = "https://cyclonedx.org/bom"
	PredicateScan = "https://cosign.sigstore.dev/attestation/vuln/v1"
)

// Predicates are the attestation types of a certification, in the order
// they are written.
var Predicates = []string{PredicateSBOM, PredicateScan, sign.DecisionPredicateType}

// Write pushes the three attestations of a, then the signature of digest
// with the policy's name and digest (and extra) as annotations: a verifier
// that sees the signature finds the attestations already there. a must
// hold a passing Decision.
func Write(ctx context.Context, digest name.Digest, signer sign.Signer, a *assess.Assessment, extra map[string]string, opts sign.Options) error {
	d := a.Decision
	if d == nil || !d.Pass {
		return fmt.Errorf("certifying %s: the image does not pass the policy", digest)
	}
	var bom bytes.Buffer
	if err := sbom.EncodeCycloneDX(&bom, a.SBOM); err != nil {
		return err
	}
	scan, err := json.Marshal(VulnPredicate(a, d.Time))
	if err != nil {
		return err
	}
	decision, err := json.Marshal(d)
	if err != nil {
		return err
	}
	for _, at := range []struct {
		typ  string
		body []byte
	}{{PredicateSBOM, bom.Bytes()}, {PredicateScan, scan}, {sign.DecisionPredicateType, decision}} {
		if err := sign.AttestImage(ctx, digest, signer, at.typ, at.body, opts); err != nil {
			return fmt.Errorf("attesting %s to %s: %w", at.typ, digest, err)
		}
	}
	ann := map[string]string{"bulwark.dev/policy": d.Policy, "bulwark.dev/policy-digest": d.PolicyDigest}
	for k, v := range extra {
		ann[k] = v
	}
	if err := sign.SignImage(ctx, digest, signer, ann, opts); err != nil {
		return fmt.Errorf("signing %s: %w", digest, err)
	}
	return nil
}

// VulnPredicate is cosign's vuln attestation shape, with Bulwark's scan
// report as the result.
func VulnPredicate(a *assess.Assessment, at time.Time) map[string]any {
	rep := report.New(a.SBOM, a.Scan, report.Database{})
	return map[string]any{
		"invocation": map[string]any{"uri": "", "event_id": "", "builder.id": ""},
		"scanner": map[string]any{
			"uri":     "https://github.com/bulwark-sec/bulwark",
			"version": sbom.ToolVersion,
			"db":      map[string]any{"uri": "https://osv.dev", "version": ""},
			"result":  rep,
		},
		"metadata": map[string]any{"scanStartedOn": at.Format(time.RFC3339), "scanFinishedOn": at.Format(time.RFC3339)},
	}
}
