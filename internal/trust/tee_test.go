package trust

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/instance"
)

// instances is a fixed set of instances; trusted while verified (the
// tracker's own rule is tested in internal/instance).
type instances []instance.Instance

func (s instances) List(workload string) []instance.Instance {
	var out []instance.Instance
	for _, in := range s {
		if in.Workload == workload {
			out = append(out, in)
		}
	}
	return out
}

func (s instances) Trusted(id string) (bool, string) {
	for _, in := range s {
		if in.ID == id {
			if in.Status != instance.Verified {
				return false, fmt.Sprintf("instance %q is %s (%s)", id, in.Status, in.Reason)
			}
			return true, ""
		}
	}
	return false, "not registered"
}

const payID = "spiffe://prod.example/ns/pay/sa/api"

func inst(id string, kind attest.Kind, status instance.Status, region, source string) instance.Instance {
	return instance.Instance{ID: id, Workload: payID, Node: "n1", Image: digest(1), Kind: kind, Status: status, Reason: "r",
		Region: region, RegionSource: source}
}

// TestTEEPolicyFacts: a workload no rule names is unconditioned; one a
// rule names holds only while every instance of it on its node for its
// image is trusted, of an accepted kind and region; every naming rule
// applies (the strictest wins).
func TestTEEPolicyFacts(t *testing.T) {
	id := spiffeid.RequireFromString(payID)
	w := identity.Workload{Node: "n1", Image: digest(1), Namespace: "pay"}
	snp := inst("vm-1", attest.SNP, instance.Verified, "eu-west", instance.RegionPlatform)
	for _, c := range []struct {
		name  string
		rules []TEERule
		ins   instances
		w     identity.Workload
		holds bool
		why   string // in the detail; "-" no condition at all
	}{
		{"not named", []TEERule{{Namespaces: []string{"other"}, Kinds: []attest.Kind{attest.SNP}}}, nil, w, true, "-"},
		{"verified", []TEERule{{Namespaces: []string{"pay"}, Kinds: []attest.Kind{attest.SNP}}}, instances{snp}, w, true, "vm-1"},
		{"by SPIFFE ID subtree", []TEERule{{SpiffeIDs: []string{"spiffe://prod.example/ns/pay/**"}, Kinds: []attest.Kind{attest.SNP}}}, nil, w, false, "tracks no confidential instances"},
		{"none", []TEERule{{Namespaces: []string{"p*"}, Kinds: []attest.Kind{attest.SNP}}}, instances{}, w, false, "is registered on node"},
		{"other node only", []TEERule{{Namespaces: []string{"pay"}, Kinds: []attest.Kind{attest.SNP}}}, instances{snp}, identity.Workload{Node: "n2", Image: digest(1), Namespace: "pay"}, false, `on node "n2"`},
		{"other image only", []TEERule{{Namespaces: []string{"pay"}, Kinds: []attest.Kind{attest.SNP}}}, instances{snp}, identity.Workload{Node: "n1", Image: digest(2), Namespace: "pay"}, false, "no confidential instance"},
		{"revoked", []TEERule{{Namespaces: []string{"pay"}, Kinds: []attest.Kind{attest.SNP}}}, instances{inst("vm-1", attest.SNP, instance.Revoked, "eu-west", instance.RegionPlatform)}, w, false, "is revoked"},
		{"stale", []TEERule{{Namespaces: []string{"pay"}, Kinds: []attest.Kind{attest.SNP}}}, instances{inst("vm-1", attest.SNP, instance.Stale, "eu-west", instance.RegionPlatform)}, w, false, "is stale"},
		{"one of two failed", []TEERule{{Namespaces: []string{"pay"}, Kinds: []attest.Kind{attest.SNP}}}, instances{snp, inst("vm-2", attest.SNP, instance.Failed, "eu-west", instance.RegionPlatform)}, w, false, `"vm-2" is failed`},
		{"wrong kind", []TEERule{{Namespaces: []string{"pay"}, Kinds: []attest.Kind{attest.TDX}}}, instances{snp}, w, false, "asks for tdx"},
		{"region", []TEERule{{Namespaces: []string{"pay"}, Kinds: []attest.Kind{attest.SNP}, Regions: []string{"us-east"}}}, instances{snp}, w, false, `region "eu-west"`},
		{"region by node config", []TEERule{{Namespaces: []string{"pay"}, Kinds: []attest.Kind{attest.SNP}, AttestedRegion: true}}, instances{inst("vm-1", attest.SNP, instance.Verified, "eu-west", instance.RegionNodeConfig)}, w, false, "attested region"},
		{"strictest rule wins", []TEERule{{Namespaces: []string{"pay"}, Kinds: []attest.Kind{attest.SNP, attest.TDX}}, {SpiffeIDs: []string{payID}, Kinds: []attest.Kind{attest.TDX}}}, instances{snp}, w, false, "asks for tdx"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &TEEPolicy{Rules: c.rules}
			if err := p.validate(); err != nil {
				t.Fatal(err)
			}
			var src TEEInstances
			if c.ins != nil {
				src = c.ins
			}
			got := p.Facts(src)(id, c.w)
			if c.why == "-" {
				if got != nil {
					t.Fatalf("unnamed workload conditioned: %+v", got)
				}
				return
			}
			if got == nil || got.Holds != c.holds || !strings.Contains(got.Detail, c.why) {
				t.Fatalf("got %+v, want holds %v with %q", got, c.holds, c.why)
			}
			// The rule refuses with the reason the audit log records.
			err := identity.Decide(identity.Facts{Certified: true, Heartbeat: time.Now(), TEE: got}, time.Now(), identity.DefaultNodeGrace)
			if (err == nil) != c.holds || (err != nil && !strings.Contains(err.Error(), identity.ReasonUnattested)) {
				t.Fatalf("Decide: %v", err)
			}
		})
	}
}

// TestTEEPolicyInput: a policy file with an unknown key, no selector, no
// kind, an unknown kind or a malformed glob is refused with what is
// wrong; the flag form reads SPIFFE ID globs and ns: globs.
func TestTEEPolicyInput(t *testing.T) {
	dir := t.TempDir()
	for body, want := range map[string]string{
		"rules: [{namespaces: [pay], tee: [sev-snp], region: [x]}]":   "unknown field",
		"rules: [{tee: [sev-snp]}]":                                   "names no workload",
		"rules: [{namespaces: [pay]}]":                                "no TEE kind",
		"rules: [{namespaces: [pay], tee: [nitro]}]":                  "nitro",
		"rules: [{namespaces: ['[pay'], tee: [tdx]}]":                 "malformed",
		"rules: [{spiffeIDs: ['prod.example/ns/pay'], tee: [tdx]}]":   "spiffe://",
		"rules: [{namespaces: [pay], tee: [sgx], attestedRegion: 1}]": "cannot unmarshal",
	} {
		f := filepath.Join(dir, "p.yaml")
		os.WriteFile(f, []byte(body), 0o600)
		if _, err := LoadTEEPolicy(f); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		} else if strings.Contains(err.Error(), "JSON") {
			t.Errorf("%s: %q speaks of JSON in a YAML file", body, err)
		}
	}
	f := filepath.Join(dir, "ok.yaml")
	os.WriteFile(f, []byte("rules:\n- spiffeIDs: ['spiffe://prod.example/ns/pay/**']\n  tee: [sev-snp, tdx]\n  regions: [eu-west]\n  attestedRegion: true\n"), 0o600)
	p, err := LoadTEEPolicy(f)
	if err != nil || len(p.Rules) != 1 || len(p.Rules[0].Kinds) != 2 || !p.Rules[0].AttestedRegion {
		t.Fatalf("%+v %v", p, err)
	}

	r, err := ParseTEERule("ns:pay-*=sev-snp,tdx")
	if err != nil || r.Namespaces[0] != "pay-*" || len(r.Kinds) != 2 {
		t.Fatalf("%+v %v", r, err)
	}
	r, err = ParseTEERule("spiffe://prod.example/ns/pay/**=sgx")
	if err != nil || r.SpiffeIDs[0] != "spiffe://prod.example/ns/pay/**" {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []string{"", "=sev-snp", "ns:pay=", "ns:pay", "ns:pay=sev", "pay=tdx"} {
		if _, err := ParseTEERule(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}

	for glob, ok := range map[string]bool{
		"spiffe://prod.example/ns/pay/**":     true,
		"spiffe://prod.example/ns/*/sa/api":   true,
		"spiffe://prod.example/ns/pay/*":      false, // '*' is one segment
		"spiffe://prod.example/ns/pa/**":      false,
		"spiffe://prod.example/ns/pay/sa/api": true,
	} {
		if globMatch(glob, payID) != ok {
			t.Errorf("%s matching %s: want %v", glob, payID, ok)
		}
	}
}

func FuzzParseTEERule(f *testing.F) {
	f.Add("ns:pay=sev-snp,tdx")
	f.Add("spiffe://td/ns/pay/**=sgx")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseTEERule(s)
		if err != nil {
			return
		}
		if len(r.Kinds) == 0 || len(r.SpiffeIDs)+len(r.Namespaces) == 0 {
			t.Fatalf("%q accepted as %+v", s, r)
		}
		globMatch(strings.Join(append(r.SpiffeIDs, r.Namespaces...), ""), s)
	})
}
