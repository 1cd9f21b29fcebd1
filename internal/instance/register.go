package instance

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Challenge is a nonce the server issued to one instance, usable once
// until Expires. The instance's evidence must carry Binding(Nonce, its
// public key) as REPORT_DATA: attest.Binding.
type Challenge struct {
	Instance string     `json:"instance"`
	Nonce    attest.Hex `json:"nonce"`
	Expires  time.Time  `json:"expires"`
}

// HostDataFor is the HOST_DATA (SEV-SNP) or MRCONFIGID prefix (TDX)
// a provider sets at launch to bind the guest to region.
func HostDataFor(region string) []byte {
	s := sha256.Sum256([]byte("bulwark-region:" + region))
	return s[:]
}

// Challenge issues a fresh nonce to instance id, recorded (and audited) so
// that any replica can take it once.
func (t *Tracker) Challenge(ctx context.Context, actor, id string) (Challenge, error) {
	if err := checkID("instance", id); err != nil {
		return Challenge{}, err
	}
	c := Challenge{Instance: id, Nonce: make([]byte, 32), Expires: t.now().Add(t.policy.ChallengeTTL).UTC()}
	if _, err := rand.Read(c.Nonce); err != nil {
		return Challenge{}, fmt.Errorf("making a nonce: %w", err)
	}
	err := t.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		if err := tx.PutChallenge(ctx, c.Nonce.String(), id, c.Expires); err != nil {
			return nil, err
		}
		after, _ := json.Marshal(map[string]any{"expires": c.Expires})
		return []audit.Entry{{Actor: actor, Action: "instance.challenge", Object: "instance:" + id, After: after}}, nil
	})
	if err != nil {
		return Challenge{}, err
	}
	return c, nil
}

// Registration is an instance presenting evidence.
type Registration struct {
	ID       string `json:"id"`
	Workload string `json:"workload"`
	Node     string `json:"node"`
	// Region is where the registrant says the instance runs; see the
	// package doc for how it is believed.
	Region string `json:"region"`
	// Image is the digest of the certified image the instance runs.
	Image string `json:"image"`
	// Nonce is the challenge's; PublicKey, when set, is bound with it.
	Nonce     attest.Hex      `json:"nonce"`
	PublicKey attest.Hex      `json:"publicKey,omitempty"`
	Evidence  attest.Evidence `json:"evidence"`
}

// ErrInput marks a registration the tracker cannot consider at all;
// ErrConflict one for an instance ID another workload holds.
var (
	ErrInput    = errors.New("bad registration")
	ErrConflict = errors.New("conflicting registration")
)

func checkID(what, s string) error {
	if s == "" || len(s) > 253 {
		return fmt.Errorf("%w: %s must be 1 to 253 characters", ErrInput, what)
	}
	for _, r := range s {
		if r < 0x21 || r > 0x7e {
			return fmt.Errorf("%w: %s %q has a character outside printable ASCII", ErrInput, what, s)
		}
	}
	return nil
}

func (r *Registration) validate() error {
	for _, f := range []struct{ what, v string }{{"id", r.ID}, {"workload", r.Workload}, {"image", r.Image}} {
		if err := checkID(f.what, f.v); err != nil {
			return err
		}
	}
	if len(r.Nonce) != 32 {
		return fmt.Errorf("%w: nonce is %d bytes, want 32", ErrInput, len(r.Nonce))
	}
	if _, err := attest.ParseKind(string(r.Evidence.Kind)); err != nil || len(r.Evidence.Data) == 0 {
		return fmt.Errorf("%w: evidence needs a kind (sev-snp, tdx, sgx) and data", ErrInput)
	}
	return nil
}

// Register verifies reg's evidence against the collateral, the image's
// reference values and policy, the nonce and the region policy, and
// records the instance as verified or failed (with the reason) together
// with its audit entry. The nonce is consumed in the same transaction: a
// replayed, expired or foreign nonce records nothing and returns a
// refusal with attest.ReasonReplay. An instance registering again is
// re-attesting.
func (t *Tracker) Register(ctx context.Context, actor string, reg Registration) (Instance, error) {
	if err := reg.validate(); err != nil {
		return Instance{}, err
	}
	now := t.now().UTC()
	in := &Instance{ID: reg.ID, Workload: reg.Workload, Node: reg.Node, Kind: reg.Evidence.Kind, Image: reg.Image,
		Region: reg.Region, RegionSource: RegionNodeConfig, Registered: now, Updated: now}
	old, existed := t.Get(reg.ID)
	if existed {
		if old.Workload != reg.Workload {
			return Instance{}, fmt.Errorf("%w: instance %q belongs to workload %q", ErrConflict, reg.ID, old.Workload)
		}
		in.Registered = old.Registered
	}
	res, verr := t.verify(ctx, &reg)
	if verr == nil {
		in.Region, in.RegionSource, verr = t.region(reg.Region, res)
	}
	if verr == nil && existed && old.Result != nil && (old.Kind != res.Kind || !bytes.Equal(old.Result.Platform, res.Platform)) {
		// Re-attestation proves the same instance is still sound; evidence
		// from another machine (or kind) is another instance.
		verr = &attest.RefusedError{Kind: res.Kind, Reason: attest.ReasonPolicy,
			Detail: fmt.Sprintf("instance %q attested on platform %s (%s) before and now on %s (%s): register the new one under its own ID", reg.ID, old.Result.Platform, old.Kind, res.Platform, res.Kind)}
	}
	if verr != nil {
		in.Status, in.Reason, in.Detail = Failed, string(attest.ReasonOf(verr)), verr.Error()
		if in.Reason == "" {
			in.Reason = "error"
		}
		// The last verified result stays: it binds the ID to its machine,
		// and a failure must not unbind it.
		in.Result, in.Verified = old.Result, old.Verified
	} else {
		in.Status, in.Result, in.Verified = Verified, res, now
	}
	row, err := toRow(in)
	if err != nil {
		return Instance{}, err
	}
	err = t.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		if err := tx.TakeChallenge(ctx, reg.Nonce.String(), reg.ID); errors.Is(err, store.ErrChallenge) {
			return nil, &attest.RefusedError{Kind: reg.Evidence.Kind, Reason: attest.ReasonReplay, Detail: "the nonce was not issued to this instance, was used already or has expired", Err: err}
		} else if err != nil {
			return nil, err
		}
		if err := tx.PutTEEInstances(ctx, []store.TEEInstance{row}); err != nil {
			return nil, err
		}
		after, _ := json.Marshal(map[string]any{"status": in.Status, "reason": in.Reason, "kind": in.Kind, "image": in.Image,
			"workload": in.Workload, "node": in.Node, "region": in.Region, "regionSource": in.RegionSource})
		entries := []audit.Entry{{Actor: actor, Action: "instance.register", Object: "instance:" + in.ID, After: after}}
		if !existed || old.Status != in.Status || old.Image != in.Image || old.Region != in.Region {
			entries = append(entries, imageEntry(actor, in.Image, []string{in.ID}, in.Status))
		}
		return entries, nil
	})
	if err != nil {
		return Instance{}, err
	}
	t.mu.Lock()
	t.byID[in.ID] = in
	if t.byWorkload[in.Workload] == nil {
		t.byWorkload[in.Workload] = map[string]*Instance{}
	}
	t.byWorkload[in.Workload][in.ID] = in
	t.mu.Unlock()
	t.log.Info("instance registered", "instance", in.ID, "workload", in.Workload, "status", in.Status, "reason", in.Reason)
	return *in, nil
}

func (t *Tracker) verify(ctx context.Context, reg *Registration) (*attest.Result, error) {
	pred, err := t.refs(ctx, reg.Image)
	if err != nil {
		return nil, &attest.RefusedError{Kind: reg.Evidence.Kind, Reason: attest.ReasonMeasurement,
			Detail: fmt.Sprintf("image %s has no reference values in its certification", reg.Image), Err: err}
	}
	return t.Verifier().Verify(&reg.Evidence, attest.Expect{
		ReportData: attest.Binding(reg.Nonce, reg.PublicKey),
		References: pred.References,
		Policy:     pred.Policy,
	})
}

// region decides where the instance runs and how that is known, and
// applies the region policy.
func (t *Tracker) region(claimed string, res *attest.Result) (string, string, error) {
	refuse := func(format string, args ...any) error {
		return &attest.RefusedError{Kind: res.Kind, Reason: attest.ReasonRegion, Detail: fmt.Sprintf(format, args...)}
	}
	region, source := claimed, RegionNodeConfig
	if r, ok := t.policy.Platforms[hex.EncodeToString(res.Platform)]; ok && res.Kind == attest.SNP {
		if claimed != "" && claimed != r {
			return "", "", refuse("claims region %q but its chip is installed in %q", claimed, r)
		}
		region, source = r, RegionPlatform
	} else if claimed != "" && len(res.HostData) >= 32 && bytes.Equal(res.HostData[:32], HostDataFor(claimed)) {
		source = RegionHostData
	}
	if t.policy.RequireAttestedRegion && source == RegionNodeConfig {
		return "", "", refuse("region %q is known only from the node's configuration and the policy requires an attested region", region)
	}
	if len(t.policy.Regions) > 0 && !slices.Contains(t.policy.Regions, region) {
		return "", "", refuse("region %q (%s) is not one of %v", region, source, t.policy.Regions)
	}
	return region, source, nil
}
