package attest

import (
	"errors"
	"fmt"
)

// Reason says why evidence was refused. Callers decide on it; the detail is
// for people.
type Reason string

// The refusal reasons.
const (
	ReasonMalformed         Reason = "malformed"          // not parseable as the claimed kind
	ReasonUnsupported       Reason = "unsupported"        // a format version or kind we do not verify
	ReasonSignature         Reason = "signature"          // the report/quote signature does not verify
	ReasonRoot              Reason = "root"               // the certificate chain does not end at a trusted vendor root
	ReasonTCBOutOfDate      Reason = "tcb-out-of-date"    // platform TCB below the collateral's or policy's minimum
	ReasonTCBRevoked        Reason = "tcb-revoked"        // TCB level or certificate revoked
	ReasonDebug             Reason = "debug"              // debug enclave/guest
	ReasonNonce             Reason = "nonce"              // REPORT_DATA does not bind the expected nonce
	ReasonReplay            Reason = "replay"             // nonce unknown, already used or expired
	ReasonCollateralExpired Reason = "collateral-expired" // collateral or certificate outside its validity
	ReasonMeasurement       Reason = "measurement"        // measurement/host data/signer not in the reference values
	ReasonPolicy            Reason = "policy"             // another policy check (kind, SMT, migration agent, ...)
	ReasonRegion            Reason = "region"             // the instance runs, or may run, outside the allowed regions
)

// RefusedError is the typed refusal of a piece of evidence.
type RefusedError struct {
	Kind   Kind
	Reason Reason
	Detail string
	Err    error
}

func (e *RefusedError) Error() string {
	msg := fmt.Sprintf("%s evidence refused (%s): %s", e.Kind, e.Reason, e.Detail)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *RefusedError) Unwrap() error { return e.Err }

func refuse(k Kind, r Reason, err error, format string, args ...any) *RefusedError {
	return &RefusedError{Kind: k, Reason: r, Detail: fmt.Sprintf(format, args...), Err: err}
}

// ReasonOf returns the refusal reason of err, or "" when err is not a refusal.
func ReasonOf(err error) Reason {
	var re *RefusedError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}
