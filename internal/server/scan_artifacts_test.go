package server

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/sign"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// waitJob polls GET /api/v1/jobs/{id} until the job is done or failed, or
// has failed once and is queued again.
func waitJob(c *client, token string, id int64, within time.Duration) api.JobView {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var j api.JobView
		c.json("GET", "/api/v1/jobs/"+strconv.FormatInt(id, 10), token, nil, http.StatusOK, &j)
		if j.State == store.JobDone || j.State == store.JobFailed || j.Error != "" {
			return j
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("job %d after %s: %+v", id, within, j)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A scan requested by POST /api/v1/scans or queued by a push notification
// that names a signature, attestation or SBOM (by cosign's tag, or by the
// digest of a manifest of an artifact media type) is recognised as the
// watcher recognises them: the job is done at the first attempt, nothing
// is scanned, a tagged one is attached to its image, and the signature's
// tag is not recorded as one of an image's tags. Before, each such job
// failed "invalid tar header" and was retried up to the attempt limit.
func TestScanJobOfArtifactIsNotScanned(t *testing.T) {
	ctx := t.Context()
	reg := registrytest.New(t)
	img := testImage(t)
	reg.Push(t, "shop/web:1", img)
	digest := digestOf(t, img)
	ref, err := name.NewDigest(reg.Host + "/shop/web@" + digest)
	if err != nil {
		t.Fatal(err)
	}
	priv, _, err := sign.GenerateKey([]byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := sign.LoadPrivateKey(priv, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sign.SignImage(ctx, ref, sign.NewKeySigner(key), nil, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	sigTag, _ := sign.SignatureTag(ref)
	reg.Push(t, "shop/web:sbom", sbomReferrer(t, img))
	sbomDigest := digestOf(t, sbomReferrer(t, img))
	sigDesc, err := remote.Head(sigTag)
	if err != nil {
		t.Fatal(err)
	}
	sigDigest := sigDesc.Digest.String()

	dir := t.TempDir()
	admin := bootstrap(t, dir)
	// No registry is registered: only the requests below queue jobs.
	c, stop := startServerWith(t, dir, func(cfg *Config) { cfg.WatchInterval = time.Hour })
	defer stop()

	var ids []int64
	for _, image := range []string{
		sigTag.Name(),                        // cosign's tag: attached
		reg.Host + "/shop/web@" + sbomDigest, // an SBOM by digest: left to the watcher
		reg.Host + "/shop/web:sbom",          // an SBOM by a tag of no scheme: attached
	} {
		var queued struct {
			Job int64 `json:"job"`
		}
		c.json("POST", "/api/v1/scans", admin.Token, map[string]string{"image": image}, http.StatusAccepted, &queued)
		ids = append(ids, queued.Job)
	}
	envelope := map[string]any{"events": []map[string]any{{
		"id": "e1", "action": "push",
		"target": map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sigDigest,
			"repository": "shop/web", "tag": sigTag.TagStr(),
		},
		"request": map[string]any{"host": reg.Host},
	}}}
	var accepted struct {
		Jobs []struct {
			Job   int64  `json:"job"`
			Image string `json:"image"`
		} `json:"jobs"`
	}
	c.json("POST", "/api/v1/notifications/registry", admin.Token, envelope, http.StatusAccepted, &accepted)
	if len(accepted.Jobs) != 1 || accepted.Jobs[0].Image != sigTag.Name() {
		t.Errorf("notification of the signature's push queued %+v, want one job for %s", accepted.Jobs, sigTag.Name())
	}
	for _, j := range accepted.Jobs {
		ids = append(ids, j.Job)
	}
	for _, id := range ids {
		if j := waitJob(c, admin.Token, id, 15*time.Second); j.State != store.JobDone || j.Attempts != 1 || j.Error != "" {
			t.Errorf("job %d (%s): %s after %d attempts, error %q; want done at the first", id, j.Payload, j.State, j.Attempts, j.Error)
		}
	}
	stop()

	st, err := OpenStore(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Image(ctx, sigDigest); err == nil {
		t.Error("the signature was stored as an image")
	}
	atts, err := st.Attachments(ctx, digest)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, a := range atts {
		kinds[a.Kind]++
	}
	if kinds[sign.KindSignature] != 1 || kinds[sign.KindSBOM] != 1 {
		t.Errorf("attachments of the image: %+v; want its signature and SBOM", atts)
	}
	tags, _ := st.Tags(ctx, reg.Host+"/shop/web")
	for _, tg := range tags {
		if strings.HasPrefix(tg.Tag, "sha256-") {
			t.Errorf("the signature's tag is recorded as an image's: %+v", tg)
		}
	}
}
