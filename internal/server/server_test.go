package server

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

func layerOf(t testing.TB, files map[string]string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// in name order: the same files always make the same layer digest
	for _, name := range slices.Sorted(maps.Keys(files)) {
		body := files[name]
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func dpkgEntry(name, version string) string {
	return fmt.Sprintf("Package: %s\nStatus: install ok installed\nArchitecture: amd64\nVersion: %s\n\n", name, version)
}

// testImage is a Debian 12 base layer with a dpkg database of two
// packages, and an app layer with one npm package.
func testImage(t testing.TB) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image,
		layerOf(t, map[string]string{
			"etc/os-release":      "ID=debian\nVERSION_ID=\"12\"\n",
			"var/lib/dpkg/status": dpkgEntry("libc6", "2.36-9+deb12u4") + dpkgEntry("zlib1g", "1:1.2.13.dfsg-1"),
		}),
		layerOf(t, map[string]string{
			"app/node_modules/left-pad/package.json": `{"name": "left-pad", "version": "1.3.0"}`,
		}))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// client speaks to the test server.
type client struct {
	t    *testing.T
	base string
}

func (c *client) do(method, path, token string, body any) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c *client) json(method, path, token string, body any, wantCode int, out any) {
	c.t.Helper()
	code, b := c.do(method, path, token, body)
	if code != wantCode {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, wantCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
}

// startServer runs Run on dir and returns the client and a stop function
// that cancels it and checks it returns nil promptly.
func startServer(t *testing.T, dir string) (*client, func()) {
	t.Helper()
	return startServerWith(t, dir, nil)
}

// startServerWith is startServer with the Config changed by mod first.
func startServerWith(t *testing.T, dir string, mod func(*Config)) (*client, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	cfg := Config{
		DataDir:      dir,
		Listen:       "127.0.0.1:0",
		Workers:      2,
		PollInterval: 20 * time.Millisecond,
		Ready:        func(a net.Addr) { ready <- a },
		Logger:       slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	// The test registries listen on loopback, which the egress policy
	// refuses unless allowed (TestServerRefusesPrivateAddresses).
	cfg.AllowPrivate = []string{"127.0.0.1"}
	if mod != nil {
		mod(&cfg)
	}
	go func() { done <- Run(ctx, cfg) }()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Run returned before listening: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("server not listening after 10 s")
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after cancel: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return within 5 s of cancel")
		}
	}
	t.Cleanup(stop)
	return &client{t: t, base: "http://" + addr.String()}, stop
}

func TestServerScanEndToEnd(t *testing.T) {
	reg := registrytest.New(t)
	img := testImage(t)
	reg.Push(t, "team/app:1", img)
	wantDigest := func() string {
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}()

	dir := t.TempDir()
	// Bootstrap: the first admin token straight through the store, as
	// `bulwark server token create` does.
	admin := bootstrap(t, dir)

	c, stop := startServer(t, dir)

	c.json("GET", "/healthz", "", nil, http.StatusOK, nil)

	// Tokens for the other roles, through the API.
	viewer, operator := roleTokens(c, admin)
	if !strings.HasPrefix(viewer.Token, store.TokenPrefix) || viewer.Role != "viewer" {
		t.Fatalf("viewer token: %+v", viewer)
	}

	// 401 and 403 on every mutating route, and 401 on a read.
	scanBody := map[string]string{"image": reg.Ref("team/app:1")}
	tokenBody := map[string]string{"name": "x", "role": "admin"}
	for _, tc := range []struct {
		method, path, token string
		body                any
		want                int
	}{
		{"POST", "/api/v1/scans", "", scanBody, http.StatusUnauthorized},
		{"POST", "/api/v1/scans", "bwk_not-a-token", scanBody, http.StatusUnauthorized},
		{"POST", "/api/v1/scans", "garbage", scanBody, http.StatusUnauthorized},
		{"POST", "/api/v1/scans", viewer.Token, scanBody, http.StatusForbidden},
		{"POST", "/api/v1/tokens", "", tokenBody, http.StatusUnauthorized},
		{"POST", "/api/v1/tokens", "bwk_not-a-token", tokenBody, http.StatusUnauthorized},
		{"POST", "/api/v1/tokens", viewer.Token, tokenBody, http.StatusForbidden},
		{"POST", "/api/v1/tokens", operator.Token, tokenBody, http.StatusForbidden},
		{"GET", "/api/v1/images", "", nil, http.StatusUnauthorized},
		{"GET", "/api/v1/jobs/1", "", nil, http.StatusUnauthorized},
	} {
		code, b := c.do(tc.method, tc.path, tc.token, tc.body)
		if code != tc.want {
			t.Errorf("%s %s with token %q: %d, want %d: %s", tc.method, tc.path, tc.token, code, tc.want, b)
		}
		var e map[string]string
		if err := json.Unmarshal(b, &e); err != nil || e["error"] == "" {
			t.Errorf("%s %s: body %s is not {\"error\": ...}", tc.method, tc.path, b)
		}
	}
	c.json("POST", "/api/v1/scans", operator.Token, map[string]string{"image": "UPPER CASE/not a ref"}, http.StatusBadRequest, nil)
	c.json("POST", "/api/v1/scans", operator.Token, map[string]string{"imag": "x"}, http.StatusBadRequest, nil)

	// Queue a scan as the operator and wait for it.
	var accepted struct {
		Job   int64  `json:"job"`
		Image string `json:"image"`
		State string `json:"state"`
	}
	c.json("POST", "/api/v1/scans", operator.Token, scanBody, http.StatusAccepted, &accepted)
	if accepted.Job == 0 || accepted.State != "queued" {
		t.Fatalf("scan accepted: %+v", accepted)
	}
	var job struct {
		State   string          `json:"state"`
		Error   string          `json:"error"`
		Payload json.RawMessage `json:"payload"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.json("GET", fmt.Sprintf("/api/v1/jobs/%d", accepted.Job), viewer.Token, nil, http.StatusOK, &job)
		if job.State == store.JobDone || job.State == store.JobFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d still %s after 10 s (last error %q)", accepted.Job, job.State, job.Error)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if job.State != store.JobDone {
		t.Fatalf("job %d: %s: %s", accepted.Job, job.State, job.Error)
	}
	if !strings.Contains(string(job.Payload), "team/app:1") {
		t.Errorf("job payload %s", job.Payload)
	}
	c.json("GET", "/api/v1/jobs/999999", viewer.Token, nil, http.StatusNotFound, nil)
	c.json("GET", "/api/v1/jobs/abc", viewer.Token, nil, http.StatusBadRequest, nil)

	// The image, its packages and its tag.
	var detail struct {
		Digest     string   `json:"digest"`
		Repository string   `json:"repository"`
		Packages   int      `json:"packages"`
		Tags       []string `json:"tags"`
		Created    string   `json:"created"`
	}
	c.json("GET", "/api/v1/images/"+wantDigest, viewer.Token, nil, http.StatusOK, &detail)
	wantRepo := reg.Host + "/team/app"
	if detail.Digest != wantDigest || detail.Repository != wantRepo {
		t.Errorf("image: %+v, want digest %s in %s", detail, wantDigest, wantRepo)
	}
	if detail.Packages != 3 {
		t.Errorf("packages = %d, want 3 (libc6, zlib1g, left-pad)", detail.Packages)
	}
	if len(detail.Tags) != 1 || detail.Tags[0] != wantRepo+":1" {
		t.Errorf("tags = %q, want [%s:1]", detail.Tags, wantRepo)
	}
	if !strings.HasPrefix(detail.Created, "2026-01-02T03:04:05") {
		t.Errorf("created = %q", detail.Created)
	}
	c.json("GET", "/api/v1/images/sha256:0000", viewer.Token, nil, http.StatusNotFound, nil)

	var list struct {
		Images []store.Image `json:"images"`
	}
	c.json("GET", "/api/v1/images", viewer.Token, nil, http.StatusOK, &list)
	if len(list.Images) != 1 || list.Images[0].Digest != wantDigest {
		t.Errorf("images: %+v", list.Images)
	}
	c.json("GET", "/api/v1/images?repository="+wantRepo, viewer.Token, nil, http.StatusOK, &list)
	if len(list.Images) != 1 {
		t.Errorf("images of %s: %+v", wantRepo, list.Images)
	}

	// Metrics.
	code, metrics := c.do("GET", "/metrics", "", nil)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		"bulwark_jobs_claimed_total 1\n",
		"bulwark_jobs_completed_total 1\n",
		"bulwark_jobs_failed_total 0\n",
		"bulwark_images_stored 1\n",
		`bulwark_http_requests_total{route="POST /api/v1/scans",code="202"} 1`,
		`bulwark_http_requests_total{route="POST /api/v1/scans",code="403"} 1`,
		`bulwark_http_requests_total{route="GET /api/v1/jobs/{id}",code="200"}`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}

	stop()

	// The audit log: bootstrap token, two API tokens, one scan request;
	// refused calls leave no entry. The chain and its anchor verify.
	got := verifyAudit(t, dir)
	adminActor := fmt.Sprintf("token:%d", admin.ID)
	want := []string{
		fmt.Sprintf("test:bootstrap token.create token:%d", admin.ID),
		fmt.Sprintf("%s token.create token:%d", adminActor, viewer.ID),
		fmt.Sprintf("%s token.create token:%d", adminActor, operator.ID),
		fmt.Sprintf("token:%d scan.request %s", operator.ID, reg.Ref("team/app:1")),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	st, err := OpenStore(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// No token is stored in the log.
	var leaked int
	st.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM audit_log WHERE after LIKE '%bwk_%'`).Scan(&leaked)
	if leaked != 0 {
		t.Errorf("%d audit entries contain a token", leaked)
	}
}

// A scan of an image that does not exist fails its job (retried later),
// not the server.
func TestServerScanFailureFailsJob(t *testing.T) {
	reg := registrytest.New(t)
	dir := t.TempDir()
	st, err := OpenStore(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	op, err := api.CreateToken(t.Context(), api.NewAuditor(st, ""), "test", "ci", store.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	c, stop := startServer(t, dir)
	var accepted struct {
		Job int64 `json:"job"`
	}
	c.json("POST", "/api/v1/scans", op.Token, map[string]string{"image": reg.Ref("missing/app:1")}, http.StatusAccepted, &accepted)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var job struct {
			State    string `json:"state"`
			Attempts int    `json:"attempts"`
			Error    string `json:"error"`
		}
		c.json("GET", fmt.Sprintf("/api/v1/jobs/%d", accepted.Job), op.Token, nil, http.StatusOK, &job)
		if job.Attempts >= 1 && job.State == store.JobQueued && job.Error != "" {
			break // failed once, queued again with backoff
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d: %+v after 10 s", accepted.Job, job)
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, metrics := c.do("GET", "/metrics", "", nil)
	if code != http.StatusOK || !strings.Contains(string(metrics), "bulwark_jobs_failed_total 1\n") {
		t.Errorf("/metrics: %d\n%s", code, metrics)
	}
	stop()
}

// Run fails, and does not hang, when it cannot listen.
func TestServerListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = Run(t.Context(), Config{DataDir: t.TempDir(), Listen: ln.Addr().String(), Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "listening") {
		t.Fatalf("Run on a used port: %v", err)
	}
}
