package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/assess"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/certify"
	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/reeval"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/sign"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Actors of the audit entries the server writes on its own.
const (
	actorScan = "system:scan"
)

// judgment turns an assessment into a certification state: the policy
// the server judges with, and the key it certifies with (nil: the server
// records decisions but certifies nothing; images are certified by
// `bulwark certify` and the trust policy elsewhere).
type judgment struct {
	store    *store.Store
	auditor  *api.Auditor
	policy   *policy.Policy
	signer   sign.Signer
	keychain authn.Keychain
	insecure bool
	now      func() time.Time
	// transport pushes signatures and attestations (the egress policy).
	transport http.RoundTripper
	// advisoryStatus, when set, is recorded on re-judged decisions.
	advisoryStatus func(ctx context.Context) (api.AdvisoryStatus, error)
}

// certify records a's decision on digest (in repository) and moves the
// digest's certification accordingly:
//   - passes, a signing key is configured, not yet certified: the
//     attestations and the signature are written to the registry, then the
//     certification is recorded (audited, certification.grant);
//   - fails and was certified: revoked (audited, certification.revoke);
//   - otherwise: not_certified with the reason (audited when it changes).
func (j *judgment) certify(ctx context.Context, ref name.Digest, repository string, a *assess.Assessment) error {
	digest := ref.DigestStr()
	d := a.Decision
	if err := j.store.PutDecision(ctx, digest, d); err != nil {
		return err
	}
	cur, err := j.store.Certification(ctx, digest)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	switch {
	case d.Pass && cur.Status == store.Certified:
		return nil
	case d.Pass && j.signer != nil:
		opts := sign.Options{Keychain: j.keychain, Transport: j.transport}
		if err := certify.Write(ctx, ref, j.signer, a, nil, opts); err != nil {
			return err
		}
		return j.set(ctx, digest, cur, store.Certified,
			fmt.Sprintf("passed policy %s (%s)", d.Policy, shortDigest(d.PolicyDigest)), "certification.grant")
	case !d.Pass && cur.Status == store.Certified:
		// The revocation, its audit entry and its outbox event (the
		// notification) commit together.
		if _, err := j.store.Revoke(ctx, digest, decisionReason(d), actorScan); err != nil {
			return err
		}
		return j.auditor.Anchor(ctx)
	default:
		reason := decisionReason(d)
		if d.Pass {
			reason = "passes the policy; this server has no signing key (--signing-key)"
		}
		if cur.Status == store.NotCertified && cur.Reason == reason {
			return nil
		}
		return j.set(ctx, digest, cur, store.NotCertified, reason, "certification.deny")
	}
}

// set records a certification state and its audit entry in one
// transaction.
func (j *judgment) set(ctx context.Context, digest string, old store.Certification, status, reason, action string) error {
	var now store.Certification
	err := j.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		if err := tx.SetCertification(ctx, digest, status, reason); err != nil {
			return nil, err
		}
		var err error
		if now, err = tx.Certification(ctx, digest); err != nil {
			return nil, err
		}
		if status == store.Certified {
			if err := tx.EnqueueCertificationEvent(ctx, store.CertificationEvent{Digest: digest, Status: status, Reason: reason, Time: now.Updated}); err != nil {
				return nil, err
			}
		}
		var before []byte
		if old.Status != "" {
			before, _ = json.Marshal(map[string]string{"status": old.Status, "reason": old.Reason})
		}
		after, _ := json.Marshal(map[string]string{"status": status, "reason": reason})
		return []audit.Entry{{Actor: actorScan, Action: action, Object: digest, Before: before, After: after}}, nil
	})
	return err
}

// judge is re-evaluation's Judge: the image's latest decision, re-judged
// with the fresh findings (policy.Rejudge). An image without a decision of
// the current policy (scanned before the policy changed, or stored by
// hand) is judged by the vulnerabilities rule's threshold alone. The new
// decision is stored when it fails.
//
// record, when set, is given every judged image's findings counts, for the
// caller to store once the run is over (store.SetFindings).
func (j *judgment) judge(fallback reeval.Judge, record func(digest string, counts map[string]int)) reeval.Judge {
	return func(ctx context.Context, digest string, s *sbom.SBOM, res *match.Result) (bool, string, error) {
		if record != nil {
			record(digest, severityCounts(res))
		}
		prev, err := j.store.LatestDecision(ctx, digest)
		if errors.Is(err, store.ErrNotFound) || err == nil && prev.PolicyDigest != j.policy.Digest {
			return fallback(ctx, digest, s, res)
		}
		if err != nil {
			return false, "", err
		}
		img, err := j.store.Image(ctx, digest)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, "", err
		}
		d, err := j.policy.Rejudge(prev, res.Findings, img.Repository, j.now())
		if err != nil {
			return false, "", err
		}
		if j.advisoryStatus != nil {
			st, err := j.advisoryStatus(ctx)
			if err != nil {
				return false, "", err
			}
			withAdvisories(d, st)
		}
		if d.Pass {
			return true, "", nil
		}
		if err := j.store.PutDecision(ctx, digest, d); err != nil {
			return false, "", err
		}
		return false, decisionReason(d), nil
	}
}

// decisionReason is a one-line summary of a failing decision: the failed
// rules with the first evidence of each.
func decisionReason(d *policy.Decision) string {
	var parts []string
	for _, r := range d.Rules {
		if r.Status == policy.StatusUnknown {
			parts = append(parts, r.Name+" unknown: "+r.Message)
			continue
		}
		if r.Status != policy.StatusFail {
			continue
		}
		p := r.Name
		if len(r.Evidence) > 0 {
			p += ": " + r.Evidence[0]
			if n := len(r.Evidence) - 1; n > 0 {
				p += fmt.Sprintf(" (and %d more)", n)
			}
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "fails the policy"
	}
	return strings.Join(parts, "; ")
}

// severityCounts counts findings by severity name.
func severityCounts(res *match.Result) map[string]int {
	out := map[string]int{}
	if res == nil {
		return out
	}
	for _, f := range res.Findings {
		out[f.Severity.String()]++
	}
	return out
}

// baseImage is the approved base image the decision's base-image rule
// matched, or "".
func baseImage(d *policy.Decision) string {
	if d == nil {
		return ""
	}
	for _, r := range d.Rules {
		if r.Name == policy.RuleBaseImage && r.Status == policy.StatusPass && len(r.Evidence) > 0 {
			// "bottom N layers are REF"
			if _, ref, ok := strings.Cut(r.Evidence[0], " layers are "); ok {
				return ref
			}
		}
	}
	return ""
}

// labeledBase is the base image the OCI annotations-as-labels name
// (org.opencontainers.image.base.name, .base.digest), as BuildKit and
// most build tools write them; "" when absent.
func labeledBase(labels map[string]string) string {
	name := labels["org.opencontainers.image.base.name"]
	if name == "" {
		return ""
	}
	if d := labels["org.opencontainers.image.base.digest"]; d != "" {
		if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
			name = name[:i]
		}
		return name + "@" + d
	}
	return name
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}
