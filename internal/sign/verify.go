package sign

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// futureSkew is how far in the future a decision's time may be (clock
// skew between the certifying machine and this one).
const futureSkew = 5 * time.Minute

// Requirements are what Verify demands beyond one valid signature.
type Requirements struct {
	// Attestations lists predicate types that must each have an
	// attestation signed by the key about the digest.
	Attestations []string
	// MaxDecisionAge, when set, requires a decision attestation
	// (DecisionPredicateType) whose "time" is at most this old.
	MaxDecisionAge time.Duration
	// PolicyDigest, when set, requires a decision attestation whose
	// "policyDigest" equals it.
	PolicyDigest string
	// Now is the time decisions are aged against; zero means time.Now().
	Now time.Time
}

func (r Requirements) needDecision() bool { return r.MaxDecisionAge > 0 || r.PolicyDigest != "" }

// required returns the predicate types to check, each once, in order.
func (r Requirements) required() []string {
	var out []string
	for _, t := range r.Attestations {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	if r.needDecision() && !slices.Contains(out, DecisionPredicateType) {
		out = append(out, DecisionPredicateType)
	}
	return out
}

// Verified is what Verify checked.
type Verified struct {
	// Reference is the reference as given.
	Reference string `json:"reference"`
	// Repository is its fully qualified repository name.
	Repository string `json:"repository"`
	// Digest is the manifest digest the reference resolved to.
	Digest string `json:"digest"`
	// Signatures are the payloads whose signature verified and that name
	// Digest and Repository.
	Signatures []VerifiedSignature `json:"signatures"`
	// Attestations are the statements whose envelope verified and whose
	// subject is Digest: all those stored, not only the required ones, but
	// the attestation manifest is read only when some are required.
	Attestations []VerifiedAttestation `json:"attestations,omitempty"`
	// Decision is the newest decision attestation meeting the
	// requirements, when decisions were required.
	Decision *Decision `json:"decision,omitempty"`
}

// VerifiedSignature is one checked signature.
type VerifiedSignature struct {
	Payload SimpleSigning `json:"payload"`
	// KeyID identifies the key that verified it (see KeyID).
	KeyID string `json:"keyId"`
	// Layer is the digest of the payload layer.
	Layer string `json:"layer"`
}

// VerifiedAttestation is one checked attestation.
type VerifiedAttestation struct {
	PredicateType string    `json:"predicateType"`
	Statement     Statement `json:"statement"`
	KeyID         string    `json:"keyId"`
	Layer         string    `json:"layer"`
}

// Decision is the part of a decision predicate Verify reads.
type Decision struct {
	Time         time.Time `json:"time"`
	PolicyDigest string    `json:"policyDigest"`
	// Pass is the recorded verdict when the predicate has one; a decision
	// with "pass": false never verifies.
	Pass *bool `json:"pass,omitempty"`
}

// KeyID names a public key: "sha256:" and the hex SHA-256 of its PKIX DER.
func KeyID(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Verify resolves ref to the digest it names now and checks that at least
// one signature by pub names that digest and ref's repository, and that
// every attestation want requires is signed by pub about that digest.
//
// A failed check returns a *VerificationError; any other error means the
// check could not be made.
func Verify(ctx context.Context, ref string, pub crypto.PublicKey, want Requirements, opts Options) (*Verified, error) {
	if _, ok := pub.(*ecdsa.PublicKey); !ok {
		return nil, fmt.Errorf("verifying %s: %T keys are not supported (want ECDSA P-256)", ref, pub)
	}
	r, err := parseReference(ref, opts)
	if err != nil {
		return nil, err
	}
	t, err := fetch(ctx, ref, r, opts, len(want.required()) > 0)
	if err != nil {
		return nil, err
	}
	return t.check([]crypto.PublicKey{pub}, want)
}

// target is what the registry holds about one resolved reference.
type target struct {
	input  string
	repo   string
	digest name.Digest
	sigTag name.Tag
	attTag name.Tag
	sigs   []storedLayer
	atts   []storedLayer
}

func parseReference(ref string, opts Options) (name.Reference, error) {
	var nopts []name.Option
	if opts.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("parsing reference %q: %w", ref, err)
	}
	return r, nil
}

// fetch resolves r (given as ref) and reads its signature manifest and,
// when withAttestations, its attestation manifest. A missing manifest is
// empty, not an error.
func fetch(ctx context.Context, ref string, r name.Reference, opts Options, withAttestations bool) (*target, error) {
	ro := opts.remote(ctx)
	desc, err := remote.Get(r, ro...)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", ref, err)
	}
	t := &target{input: ref, repo: r.Context().Name(), digest: r.Context().Digest(desc.Digest.String())}
	if t.sigTag, err = SignatureTag(t.digest); err != nil {
		return nil, err
	}
	if t.attTag, err = AttestationTag(t.digest); err != nil {
		return nil, err
	}
	if t.sigs, err = readLayers(t.sigTag, SimpleSigningMediaType, ro); err != nil {
		return nil, err
	}
	if withAttestations {
		if t.atts, err = readLayers(t.attTag, DSSEMediaType, ro); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *target) fail(sentinel error, format string, args ...any) *VerificationError {
	return &VerificationError{Reference: t.input, Digest: t.digest.DigestStr(), Reason: fmt.Sprintf(format, args...), Err: sentinel}
}

// check decides whether the signatures and attestations fetched satisfy
// want with any of keys.
func (t *target) check(keys []crypto.PublicKey, want Requirements) (*Verified, error) {
	v := &Verified{Reference: t.input, Repository: t.repo, Digest: t.digest.DigestStr()}
	if err := t.checkSignatures(keys, v); err != nil {
		return nil, err
	}
	if err := t.checkAttestations(keys, want, v); err != nil {
		return nil, err
	}
	return v, nil
}

// verifyWith returns the first key that verifies sig over msg.
func verifyWith(keys []crypto.PublicKey, msg, sig []byte) (crypto.PublicKey, bool) {
	for _, k := range keys {
		if checkSignature(k, msg, sig) {
			return k, true
		}
	}
	return nil, false
}

func (t *target) checkSignatures(keys []crypto.PublicKey, v *Verified) error {
	if len(t.sigs) == 0 {
		return t.fail(ErrNoSignature, "no signature stored at %s", t.sigTag)
	}
	var otherDigest, otherRepo []string
	for _, l := range t.sigs {
		sig, err := base64.StdEncoding.DecodeString(l.Annotations[SignatureAnnotation])
		if err != nil {
			continue
		}
		key, ok := verifyWith(keys, l.Payload, sig)
		if !ok {
			continue
		}
		var p SimpleSigning
		if err := json.Unmarshal(l.Payload, &p); err != nil || p.Critical.Type != SimpleSigningType {
			otherDigest = append(otherDigest, "an unreadable payload")
			continue
		}
		if got := p.Critical.Image.DockerManifestDigest; got != t.digest.DigestStr() {
			otherDigest = append(otherDigest, got)
			continue
		}
		if !sameRepository(p.Critical.Identity.DockerReference, t.repo) {
			otherRepo = append(otherRepo, p.Critical.Identity.DockerReference)
			continue
		}
		v.Signatures = append(v.Signatures, VerifiedSignature{Payload: p, KeyID: KeyID(key), Layer: l.Digest.String()})
	}
	switch {
	case len(v.Signatures) > 0:
		return nil
	case len(otherRepo) > 0:
		return t.fail(ErrRepositoryMismatch, "the signature is for repository %s, not %s", otherRepo[0], t.repo)
	case len(otherDigest) > 0:
		return t.fail(ErrDigestMismatch, "the signature names %s, not %s", otherDigest[0], t.digest.DigestStr())
	case len(t.sigs) == 1:
		return t.fail(ErrBadSignature, "the signature at %s does not verify with the key", t.sigTag)
	default:
		return t.fail(ErrBadSignature, "none of the %d signatures at %s verifies with the key", len(t.sigs), t.sigTag)
	}
}

// sameRepository compares a payload's docker-reference (a repository,
// possibly with a tag or digest) with a fully qualified repository name.
func sameRepository(dockerRef, repo string) bool {
	r, err := name.ParseReference(dockerRef)
	if err != nil {
		return false
	}
	return r.Context().Name() == repo
}

// attestationState is what was seen for one predicate type.
type attestationState struct {
	badSignature bool
	otherDigest  bool
}

func (t *target) checkAttestations(keys []crypto.PublicKey, want Requirements, v *Verified) error {
	seen := map[string]*attestationState{}
	state := func(pt string) *attestationState {
		if seen[pt] == nil {
			seen[pt] = &attestationState{}
		}
		return seen[pt]
	}
	for _, l := range t.atts {
		claimed := l.Annotations[PredicateTypeAnnotation]
		st, key, err := openEnvelope(keys, l.Payload)
		if st != nil && st.PredicateType != "" {
			claimed = st.PredicateType
		}
		if err != nil {
			state(claimed).badSignature = true
			continue
		}
		if !st.about(t.digest) {
			state(claimed).otherDigest = true
			continue
		}
		v.Attestations = append(v.Attestations, VerifiedAttestation{PredicateType: st.PredicateType, Statement: *st, KeyID: KeyID(key), Layer: l.Digest.String()})
	}
	for _, pt := range want.required() {
		found := slices.ContainsFunc(v.Attestations, func(a VerifiedAttestation) bool { return a.PredicateType == pt })
		s := state(pt)
		switch {
		case found:
		case s.otherDigest:
			return t.fail(ErrDigestMismatch, "the %s attestation is about another digest", pt)
		case s.badSignature:
			return t.fail(ErrBadSignature, "no %s attestation at %s verifies with the key", pt, t.attTag)
		default:
			return t.fail(ErrMissingAttestation, "no %s attestation stored at %s", pt, t.attTag)
		}
	}
	if want.needDecision() {
		d, err := t.checkDecision(want, v.Attestations)
		if err != nil {
			return err
		}
		v.Decision = d
	}
	return nil
}

// errEnvelope marks an envelope that does not verify.
var errEnvelope = errors.New("envelope does not verify")

// openEnvelope parses a DSSE envelope, checks its signature with keys and
// returns its in-toto statement. The statement is returned (for its claimed
// predicate type) even when the signature does not verify, with an error.
func openEnvelope(keys []crypto.PublicKey, b []byte) (*Statement, crypto.PublicKey, error) {
	var env dsse.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, nil, errEnvelope
	}
	body, err := env.DecodeB64Payload()
	if err != nil {
		return nil, nil, errEnvelope
	}
	var st Statement
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, nil, errEnvelope
	}
	if env.PayloadType != InTotoPayloadType {
		return &st, nil, errEnvelope
	}
	pae := dsse.PAE(env.PayloadType, body)
	for _, s := range env.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			continue
		}
		if key, ok := verifyWith(keys, pae, sig); ok {
			if st.Type != StatementType && st.Type != statementTypeV1 {
				return &st, nil, errEnvelope
			}
			return &st, key, nil
		}
	}
	return &st, nil, errEnvelope
}

// about reports whether the statement's subject includes the digest.
func (s *Statement) about(d name.Digest) bool {
	h, err := hashOf(d)
	if err != nil {
		return false
	}
	for _, sub := range s.Subject {
		if sub.Digest[h.Algorithm] == h.Hex {
			return true
		}
	}
	return false
}

// checkDecision picks the newest decision attestation under the required
// policy digest (any, when none is required) that passes and is recent
// enough; when none does, the newest candidate's failure is reported.
func (t *target) checkDecision(want Requirements, atts []VerifiedAttestation) (*Decision, error) {
	now := want.Now
	if now.IsZero() {
		now = time.Now()
	}
	var all, candidates []Decision
	for _, a := range atts {
		if a.PredicateType != DecisionPredicateType {
			continue
		}
		var d Decision
		if err := json.Unmarshal(a.Statement.Predicate, &d); err != nil || d.Time.IsZero() {
			continue
		}
		all = append(all, d)
		if want.PolicyDigest == "" || d.PolicyDigest == want.PolicyDigest {
			candidates = append(candidates, d)
		}
	}
	newestFirst := func(ds []Decision) {
		sort.SliceStable(ds, func(i, j int) bool { return ds[i].Time.After(ds[j].Time) })
	}
	if len(all) == 0 {
		return nil, t.fail(ErrMissingAttestation, "no %s attestation with a readable \"time\" at %s", DecisionPredicateType, t.attTag)
	}
	if len(candidates) == 0 {
		newestFirst(all)
		return nil, t.fail(ErrPolicyMismatch, "the decision was made under policy %s, not %s", orNone(all[0].PolicyDigest), want.PolicyDigest)
	}
	newestFirst(candidates)
	var first error
	for i := range candidates {
		err := t.decisionError(candidates[i], want, now)
		if err == nil {
			return &candidates[i], nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

func (t *target) decisionError(d Decision, want Requirements, now time.Time) error {
	switch {
	case d.Pass != nil && !*d.Pass:
		return t.fail(ErrDecisionFailed, "the decision of %s records a failed gate", d.Time.Format(time.RFC3339))
	case d.Time.After(now.Add(futureSkew)):
		return t.fail(ErrStaleDecision, "the decision time %s is in the future", d.Time.Format(time.RFC3339))
	case want.MaxDecisionAge > 0 && now.Sub(d.Time) > want.MaxDecisionAge:
		return t.fail(ErrStaleDecision, "the decision of %s is %s old, more than %s", d.Time.Format(time.RFC3339), now.Sub(d.Time).Round(time.Second), want.MaxDecisionAge)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
