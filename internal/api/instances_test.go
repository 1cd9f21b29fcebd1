package api

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/attest/attesttest"
	"github.com/bulwark-sec/bulwark/internal/instance"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// TestInstanceRoutes: challenge, register (verified, failed, replayed),
// list and get; a viewer may read and not register; every mutation is in
// the audit log; without a tracker the routes are 404.
func TestInstanceRoutes(t *testing.T) {
	c, st := newAPIClient(t)
	c.call("GET", "/api/v1/instances", store.RoleViewer, "", http.StatusNotFound, nil)

	now := time.Now()
	p, err := attesttest.NewSNPPlatform(now.Add(-time.Hour), attest.SNPTCB{Bootloader: 3, SNP: 8, Microcode: 115})
	if err != nil {
		t.Fatal(err)
	}
	v, err := attest.New(attest.Options{SNPRoots: p.Roots()})
	if err != nil {
		t.Fatal(err)
	}
	g := attesttest.Guest{Measurement: sha512.Sum384([]byte("app"))}
	pred := &attest.ReferencePredicate{References: []attest.Reference{{Kind: attest.SNP, Measurement: g.Measurement[:]}}}
	tr, err := instance.New(instance.Config{Auditor: c.h.auditor, Verifier: v, Logger: slog.New(slog.DiscardHandler),
		References: func(context.Context, string) (*attest.ReferencePredicate, error) { return pred, nil }})
	if err != nil {
		t.Fatal(err)
	}
	c.h.UseInstances(tr)

	register := func(id string, g attesttest.Guest, nonce attest.Hex, want int) instance.Instance {
		copy(g.ReportData[:], attest.Binding(nonce, nil))
		ev, err := p.Evidence(g)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(instance.Registration{ID: id, Workload: "pay", Node: "n1", Region: "eu", Image: "sha256:ab", Nonce: nonce, Evidence: *ev})
		var in instance.Instance
		c.call("POST", "/api/v1/instances", store.RoleOperator, string(body), want, &in)
		return in
	}
	challenge := func(id string) attest.Hex {
		var ch instance.Challenge
		c.call("POST", "/api/v1/instances/"+id+"/challenge", store.RoleOperator, "", http.StatusCreated, &ch)
		return ch.Nonce
	}
	n := challenge("i-1")
	if in := register("i-1", g, n, http.StatusOK); in.Status != instance.Verified {
		t.Fatalf("registered %+v", in)
	}
	register("i-1", g, n, http.StatusConflict) // replay
	bad := g
	bad.Measurement[0] ^= 1
	if in := register("i-2", bad, challenge("i-2"), http.StatusOK); in.Status != instance.Failed || in.Reason != string(attest.ReasonMeasurement) {
		t.Fatalf("registered %+v", in)
	}

	var list struct{ Instances []instance.Instance }
	c.call("GET", "/api/v1/instances", store.RoleViewer, "", http.StatusOK, &list)
	if len(list.Instances) != 2 {
		t.Fatalf("listed %+v", list)
	}
	c.call("GET", "/api/v1/instances?workload=other", store.RoleViewer, "", http.StatusOK, &list)
	if len(list.Instances) != 0 {
		t.Fatalf("listed %+v", list)
	}
	c.call("GET", "/api/v1/instances/i-2", store.RoleViewer, "", http.StatusOK, nil)
	c.call("GET", "/api/v1/instances/nope", store.RoleViewer, "", http.StatusNotFound, nil)

	// Roles and bad input.
	c.call("POST", "/api/v1/instances/i-3/challenge", store.RoleViewer, "", http.StatusForbidden, nil)
	c.call("POST", "/api/v1/instances/i-3/challenge", "", "", http.StatusUnauthorized, nil)
	c.call("POST", "/api/v1/instances", store.RoleViewer, "{}", http.StatusForbidden, nil)
	c.call("POST", "/api/v1/instances", store.RoleOperator, "{}", http.StatusBadRequest, nil)
	c.call("POST", "/api/v1/instances", store.RoleOperator, `{"id":"x","workload":"w","image":"i","nonce":"00","evidence":{"kind":"sgx","data":"AA=="}}`, http.StatusBadRequest, nil)
	c.call("POST", "/api/v1/instances", store.RoleOperator, `{"id":"x","bogus":1}`, http.StatusBadRequest, nil)
	c.call("POST", "/api/v1/instances", store.RoleOperator, `{"id":"x","workload":"w","image":"i","nonce":"`+strings.Repeat("0", 64)+
		`","evidence":{"kind":"sgx","data":"`+strings.Repeat("A", maxEvidenceBody)+`"}}`, http.StatusRequestEntityTooLarge, nil)

	actions := map[string]int{}
	for _, r := range auditRows(t, st) {
		actions[r.action]++
		if strings.Contains(r.after, n.String()) {
			t.Errorf("audit entry %s records the nonce", r.action)
		}
	}
	if fmt.Sprint(actions) != "map[instance.challenge:2 instance.image:2 instance.register:2]" {
		t.Fatalf("audit actions %v", actions)
	}
}
