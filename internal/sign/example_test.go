package sign_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-sec/bulwark/internal/sign"
)

// Sign an image, attest a policy decision, and verify both against the
// digest the tag names.
func Example() {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, _ := random.Image(256, 1)
	tag, _ := name.NewTag(host + "/app:1.4")
	if err := remote.Write(tag, img); err != nil {
		log.Fatal(err)
	}
	h, _ := img.Digest()
	digest := tag.Context().Digest(h.String())

	privPEM, pubPEM, _ := sign.GenerateKey([]byte("passphrase"))
	key, _ := sign.LoadPrivateKey(privPEM, []byte("passphrase"))
	signer := sign.NewKeySigner(key)
	ctx := context.Background()
	if err := sign.SignImage(ctx, digest, signer, nil, sign.Options{}); err != nil {
		log.Fatal(err)
	}
	decision := fmt.Sprintf(`{"time":%q,"policyDigest":"sha256:1234","pass":true}`, time.Now().UTC().Format(time.RFC3339))
	if err := sign.AttestImage(ctx, digest, signer, sign.DecisionPredicateType, []byte(decision), sign.Options{}); err != nil {
		log.Fatal(err)
	}

	pub, _ := sign.LoadPublicKey(pubPEM)
	want := sign.Requirements{MaxDecisionAge: 24 * time.Hour, PolicyDigest: "sha256:1234"}
	v, err := sign.Verify(ctx, tag.String(), pub, want, sign.Options{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(v.Signatures), "signature,", len(v.Attestations), "attestation, policy", v.Decision.PolicyDigest)

	_, err = sign.Verify(ctx, tag.String(), pub, sign.Requirements{PolicyDigest: "sha256:other"}, sign.Options{})
	var ve *sign.VerificationError
	fmt.Println(errors.As(err, &ve), errors.Is(err, sign.ErrPolicyMismatch))
	// Output:
	// 1 signature, 1 attestation, policy sha256:1234
	// true true
}
