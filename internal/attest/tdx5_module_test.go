package attest_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/attest/attesttest"
)

// A TDX module 1.5+ (TEE_TCB_SVN[1] > 0) is judged by its TCB info
// identity TDX_<major>: its signer, SEAM attributes and TCB level by
// TEE_TCB_SVN[0]. The real TCB info has no module identities, so they are
// added before the collateral is re-issued.
func TestSyntheticTDXv5ModuleIdentity(t *testing.T) {
	f := newTDX5(t)
	f.ext.TeeTCBSVN = [16]byte{3, 1, 4}
	q := f.quote(t, f.td, attesttest.TDReport15)
	withModule := func(ids []map[string]any) *attest.Verifier {
		var doc struct {
			TCBInfo map[string]any `json:"tcbInfo"`
		}
		if err := json.Unmarshal(f.tcbInfo, &doc); err != nil {
			t.Fatal(err)
		}
		if ids != nil {
			doc.TCBInfo["tdxModuleIdentities"] = ids
		}
		info, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		col, err := f.p.TDXCollateral(info, f.qeID, f.ext.TeeTCBSVN[:], 18, "UpToDate")
		if err != nil {
			t.Fatal(err)
		}
		v, err := attest.New(attest.Options{Now: func() time.Time { return synthNow }, IntelRoot: f.p.RootPEM(), TDX: col})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	module := func(id, signer string, isvsvn int, status string) []map[string]any {
		return []map[string]any{{"id": id, "mrsigner": signer, "attributes": "0000000000000000", "attributesMask": "FFFFFFFFFFFFFFFF",
			"tcbLevels": []map[string]any{{"tcb": map[string]any{"isvsvn": isvsvn}, "tcbDate": "2026-01-01T00:00:00Z", "tcbStatus": status}}}}
	}
	zero := strings.Repeat("0", 96)
	ev := &attest.Evidence{Kind: attest.TDX, Data: q}
	if _, err := withModule(module("TDX_01", zero, 3, "UpToDate")).Verify(ev, attest.Expect{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ids  []map[string]any
		want attest.Reason
	}{
		{"no identity", nil, attest.ReasonTCBOutOfDate},
		{"another major", module("TDX_02", zero, 3, "UpToDate"), attest.ReasonTCBOutOfDate},
		{"module SVN below", module("TDX_01", zero, 4, "UpToDate"), attest.ReasonTCBOutOfDate},
		{"module OutOfDate", module("TDX_01", zero, 3, "OutOfDate"), attest.ReasonTCBOutOfDate},
		{"module Revoked", module("TDX_01", zero, 3, "Revoked"), attest.ReasonTCBRevoked},
		{"another signer", module("TDX_01", "ff"+zero[2:], 3, "UpToDate"), attest.ReasonSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := withModule(tc.ids).Verify(ev, attest.Expect{})
			reasonIs(t, err, tc.want)
		})
	}
}
