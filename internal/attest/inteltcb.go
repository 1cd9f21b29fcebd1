package attest

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/go-tdx-guest/pcs"
)

var errNoTCBLevel = errors.New("no TCB level in the collateral matches the platform (its SVNs are below every published level)")

// intelTCBLevel finds the first TCB level (Intel orders them newest first)
// that the platform's PCK CPUSVN components, PCESVN and, for TDX,
// TEE_TCB_SVN all reach: Intel's algorithm from the PCS TCB info docs.
func intelTCBLevel(info *pcs.TcbInfo, t TCB, tdx bool) (*pcs.TcbLevel, error) {
	for i := range info.TcbLevels {
		l := &info.TcbLevels[i]
		if !svnsReach(t.CPUSVN, l.Tcb.SgxTcbcomponents, 0) || t.PCESVN < l.Tcb.Pcesvn {
			continue
		}
		if tdx {
			start := 0
			if len(t.TeeTCBSVN) > 1 && t.TeeTCBSVN[1] > 0 {
				start = 2 // TDX module 1.5+: its SVNs are judged by tdxModuleIdentities
			}
			if !svnsReach(t.TeeTCBSVN, l.Tcb.TdxTcbcomponents, start) {
				continue
			}
		}
		return l, nil
	}
	return nil, errNoTCBLevel
}

func svnsReach(have []byte, want []pcs.TcbComponent, start int) bool {
	if len(have) != len(want) {
		return false
	}
	for i := start; i < len(have); i++ {
		if have[i] < want[i].Svn {
			return false
		}
	}
	return true
}

// judgeTCBStatus turns a TCB level's status into a refusal unless policy
// accepts it. Revoked is always refused.
func judgeTCBStatus(k Kind, status pcs.TcbComponentStatus, accepted []string) error {
	s := string(status)
	switch {
	case s == "UpToDate":
		return nil
	case s == "Revoked":
		return refuse(k, ReasonTCBRevoked, nil, "the collateral marks this platform's TCB level Revoked")
	case slices.Contains(accepted, s):
		return nil
	}
	return refuse(k, ReasonTCBOutOfDate, nil, "the collateral marks this platform's TCB level %s (policy accepts UpToDate%s)", s, listSuffix(accepted))
}

func listSuffix(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return fmt.Sprintf(", %v", l)
}

// RejudgeTCB decides a recorded result against (possibly newer) Intel TCB
// info without the evidence: the revocation loop's fast path. It returns
// nil when the level is still acceptable.
func RejudgeTCB(res *Result, info *pcs.TcbInfo, accepted []string, now time.Time) error {
	if !info.NextUpdate.IsZero() && now.After(info.NextUpdate) {
		return refuse(res.Kind, ReasonCollateralExpired, nil, "TCB info was due for update at %s", info.NextUpdate.Format(time.RFC3339))
	}
	l, err := intelTCBLevel(info, res.TCB, res.Kind == TDX)
	if err != nil {
		return refuse(res.Kind, ReasonTCBOutOfDate, err, "judging TCB against evaluation data %d", info.TcbEvaluationDataNumber)
	}
	return judgeTCBStatus(res.Kind, l.TcbStatus, accepted)
}
