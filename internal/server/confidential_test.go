package server

import (
	"crypto/sha512"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/attest/attesttest"
	"github.com/bulwark-sec/bulwark/internal/instance"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/sign"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// TestServerConfidentialInstances: the server reads an image's signed
// reference values from its registry (under --attest-key), verifies an
// instance's evidence against them and the collateral directory, and
// fails an instance of an image without them.
func TestServerConfidentialInstances(t *testing.T) {
	ctx := t.Context()
	reg := registrytest.New(t)
	push := func(repoTag string) name.Digest {
		img, err := random.Image(128, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref := reg.Push(t, repoTag, img)
		d, _ := img.Digest()
		return ref.Context().Digest(d.String())
	}
	withRefs, without := push("shop/tee:1"), push("shop/plain:1")
	priv, pub, err := sign.GenerateKey([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := sign.LoadPrivateKey(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	signer := sign.NewKeySigner(k)
	p, err := attesttest.NewSNPPlatform(time.Now().Add(-time.Hour), attest.SNPTCB{Bootloader: 3, SNP: 8, Microcode: 115})
	if err != nil {
		t.Fatal(err)
	}
	g := attesttest.Guest{Measurement: sha512.Sum384([]byte("tee app"))}
	for _, d := range []name.Digest{withRefs, without} {
		if err := sign.SignImage(ctx, d, signer, nil, sign.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	pred := &attest.ReferencePredicate{References: []attest.Reference{{Kind: attest.SNP, Measurement: g.Measurement[:]}}}
	if err := attest.RecordReference(ctx, withRefs, signer, pred, sign.Options{}); err != nil {
		t.Fatal(err)
	}

	keyDir, colDir, dir := t.TempDir(), t.TempDir(), t.TempDir()
	pubFile := filepath.Join(keyDir, "ref.pub")
	os.WriteFile(pubFile, pub, 0o644)
	os.MkdirAll(filepath.Join(colDir, "snp"), 0o755)
	os.WriteFile(filepath.Join(colDir, "snp", "Milan.pem"), p.Roots()["Milan"], 0o644)
	admin := bootstrap(t, dir)
	st, err := OpenStore(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []name.Digest{withRefs, without} {
		if err := st.PutImage(ctx, store.Image{Digest: d.DigestStr(), Repository: d.Context().Name(), FirstSeen: time.Now(), LastSeen: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	c, _ := startServerWith(t, dir, func(cfg *Config) {
		cfg.WatchInterval = time.Hour
		cfg.AttestCollateral, cfg.AttestKeys = colDir, []string{pubFile}
	})
	viewer, operator := roleTokens(c, admin)

	register := func(id string, d name.Digest) instance.Instance {
		var ch instance.Challenge
		c.json("POST", "/api/v1/instances/"+id+"/challenge", operator.Token, nil, http.StatusCreated, &ch)
		gg := g
		copy(gg.ReportData[:], attest.Binding(ch.Nonce, nil))
		ev, err := p.Evidence(gg)
		if err != nil {
			t.Fatal(err)
		}
		var in instance.Instance
		c.json("POST", "/api/v1/instances", operator.Token, instance.Registration{ID: id, Workload: "shop", Node: "n1", Region: "eu",
			Image: d.DigestStr(), Nonce: ch.Nonce, Evidence: *ev}, http.StatusOK, &in)
		return in
	}
	if in := register("tee-1", withRefs); in.Status != instance.Verified {
		t.Fatalf("instance of the image with reference values: %+v", in)
	}
	if in := register("plain-1", without); in.Status != instance.Failed || in.Reason != string(attest.ReasonMeasurement) {
		t.Fatalf("instance of the image without: %+v", in)
	}
	var list struct{ Instances []instance.Instance }
	c.json("GET", "/api/v1/instances", viewer.Token, nil, http.StatusOK, &list)
	if len(list.Instances) != 2 {
		t.Fatalf("listed %+v", list)
	}
}
