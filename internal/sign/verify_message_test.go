package sign_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

// A signature that does not verify is counted in words a person would
// write: "the signature at ... does not verify", not "none of the 1
// signatures"; two or more are "none of the 2 signatures".
func TestBadSignatureMessageCounts(t *testing.T) {
	reg := registrytest.New(t)
	ctx := context.Background()
	d := pushRandom(t, reg, "count/app:1")
	s, other, third := newSigner(t), newSigner(t), newSigner(t)
	certify(t, d, s, time.Now())
	_, err := sign.Verify(ctx, d.String(), other.PublicKey(), sign.Requirements{}, sign.Options{})
	wantFailure(t, err, sign.ErrBadSignature)
	if msg := err.Error(); !strings.Contains(msg, "the signature at ") || !strings.Contains(msg, "does not verify with the key") || strings.Contains(msg, "1 signatures") {
		t.Errorf("one signature: %q", msg)
	}
	if err := sign.SignImage(ctx, d, third, nil, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	_, err = sign.Verify(ctx, d.String(), other.PublicKey(), sign.Requirements{}, sign.Options{})
	wantFailure(t, err, sign.ErrBadSignature)
	if msg := err.Error(); !strings.Contains(msg, "none of the 2 signatures at ") {
		t.Errorf("two signatures: %q", msg)
	}
}
