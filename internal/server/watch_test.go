package server

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// variantImage is testImage with one more layer holding n, so every n
// gives another digest.
func variantImage(t testing.TB, n string) (v1.Image, string) {
	t.Helper()
	img, err := mutate.AppendLayers(testImage(t), layerOf(t, map[string]string{"etc/variant": n}))
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return img, d.String()
}

// bootstrap creates an admin token in dir as `bulwark server token create`
// does.
func bootstrap(t *testing.T, dir string) api.TokenCreated {
	t.Helper()
	st, err := OpenStore(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	admin, err := api.CreateToken(t.Context(), api.NewAuditor(st, audit.AnchorPath(DBPath(dir))), "test:bootstrap", "root", store.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	return admin
}

// roleTokens has admin create a viewer ("dash") and an operator ("ci")
// token over the API.
func roleTokens(c *client, admin api.TokenCreated) (viewer, operator api.TokenCreated) {
	c.json("POST", "/api/v1/tokens", admin.Token, map[string]string{"name": "dash", "role": "viewer"}, http.StatusCreated, &viewer)
	c.json("POST", "/api/v1/tokens", admin.Token, map[string]string{"name": "ci", "role": "operator"}, http.StatusCreated, &operator)
	return viewer, operator
}

type imageDetail struct {
	Digest        string               `json:"digest"`
	Repository    string               `json:"repository"`
	Packages      int                  `json:"packages"`
	Tags          []string             `json:"tags"`
	Findings      map[string]int       `json:"findings"`
	Certification *store.Certification `json:"certification"`
	Decision      *struct {
		Pass         bool   `json:"pass"`
		PolicyDigest string `json:"policyDigest"`
	} `json:"decision"`
}

// waitImage polls GET /api/v1/images/{digest} until it answers 200 and
// ok accepts it.
func waitImage(c *client, token, digest string, within time.Duration, ok func(imageDetail) bool) imageDetail {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, b := c.do("GET", "/api/v1/images/"+digest, token, nil)
		var d imageDetail
		if code == http.StatusOK {
			if err := json.Unmarshal(b, &d); err != nil {
				c.t.Fatalf("decoding %s: %v", b, err)
			}
			if ok == nil || ok(d) {
				return d
			}
		} else if code != http.StatusNotFound {
			c.t.Fatalf("GET image %s: %d %s", digest, code, b)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("image %s not as wanted after %s: %d %s", digest, within, code, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// verifyAudit checks the audit chain and anchor of dir and returns the
// entries as "actor action object", leaving out the scans' own
// certification entries (actor system:scan; TestServerCertifies checks
// those). It returns the
// entries as "actor action object".
func verifyAudit(t *testing.T, dir string) []string {
	t.Helper()
	st, err := OpenStore(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.DB().QueryContext(t.Context(), `SELECT actor, action, object FROM audit_log ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	all := 0
	for rows.Next() {
		var actor, action, object string
		if err := rows.Scan(&actor, &action, &object); err != nil {
			t.Fatal(err)
		}
		all++
		if actor != actorScan {
			got = append(got, actor+" "+action+" "+object)
		}
	}
	rows.Close()
	anchor, err := audit.ReadAnchor(audit.AnchorPath(DBPath(dir)))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyAnchored(t.Context(), st.DB(), anchor)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Entries != all || anchor.Seq != int64(all) {
		t.Errorf("audit verify: %+v, anchor seq %d, %d entries", rep, anchor.Seq, all)
	}
	return got
}

// scanJobs counts the scan jobs of dir per image.
func scanJobs(t *testing.T, dir string) map[string]int {
	t.Helper()
	st, err := OpenStore(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.DB().QueryContext(t.Context(), `SELECT payload FROM jobs WHERE kind = 'scan'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var p []byte
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		var sp api.ScanPayload
		json.Unmarshal(p, &sp)
		out[sp.Image]++
	}
	return out
}

// A registered registry is polled: a pushed image is scanned, and when the
// tag moves the new digest is scanned and the tag follows it.
func TestServerWatchRegistry(t *testing.T) {
	reg := registrytest.New(t)
	dir := t.TempDir()
	admin := bootstrap(t, dir)
	c, stop := startServerWith(t, dir, func(cfg *Config) { cfg.WatchInterval = 100 * time.Millisecond })

	viewer, operator := roleTokens(c, admin)

	regBody := map[string]any{"name": "local", "url": "http://" + reg.Host, "repositories": []string{"team/app"}}
	for _, tc := range []struct {
		method, path, token string
		body                any
		want                int
	}{
		{"POST", "/api/v1/registries", "", regBody, http.StatusUnauthorized},
		{"POST", "/api/v1/registries", "bwk_not-a-token", regBody, http.StatusUnauthorized},
		{"POST", "/api/v1/registries", viewer.Token, regBody, http.StatusForbidden},
		{"POST", "/api/v1/registries", operator.Token, regBody, http.StatusForbidden},
		{"GET", "/api/v1/registries", "", nil, http.StatusUnauthorized},
		{"POST", "/api/v1/registries", admin.Token, map[string]any{"name": "x"}, http.StatusBadRequest},
		{"POST", "/api/v1/registries", admin.Token, map[string]any{"name": "x", "url": "ftp://r.example"}, http.StatusBadRequest},
		{"POST", "/api/v1/registries", admin.Token, map[string]any{"name": "x", "url": "r.example", "repositories": []string{"UPPER"}}, http.StatusBadRequest},
		{"POST", "/api/v1/registries", admin.Token, map[string]any{"name": "x", "url": "r.example", "credentials": "s3cret"}, http.StatusBadRequest},
	} {
		code, b := c.do(tc.method, tc.path, tc.token, tc.body)
		if code != tc.want {
			t.Errorf("%s %s with token %q: %d, want %d: %s", tc.method, tc.path, tc.token, code, tc.want, b)
		}
	}

	var created api.RegistryView
	c.json("POST", "/api/v1/registries", admin.Token, regBody, http.StatusCreated, &created)
	if created.ID == 0 || created.Name != "local" || !slices.Equal(created.Repositories, []string{"team/app"}) || created.Created.IsZero() {
		t.Errorf("created: %+v", created)
	}
	var listed struct {
		Registries []api.RegistryView `json:"registries"`
	}
	c.json("GET", "/api/v1/registries", viewer.Token, nil, http.StatusOK, &listed)
	if len(listed.Registries) != 1 || listed.Registries[0].URL != "http://"+reg.Host || !slices.Equal(listed.Registries[0].Repositories, []string{"team/app"}) {
		t.Errorf("registries: %+v", listed.Registries)
	}

	repo := reg.Host + "/team/app"
	img1, d1 := variantImage(t, "one")
	reg.Push(t, "team/app:1", img1)
	got := waitImage(c, viewer.Token, d1, 10*time.Second, func(d imageDetail) bool { return slices.Contains(d.Tags, repo+":1") })
	if got.Repository != repo || got.Packages != 3 {
		t.Errorf("image 1: %+v", got)
	}

	// The tag moves: the new digest is scanned and the tag follows.
	img2, d2 := variantImage(t, "two")
	reg.Push(t, "team/app:1", img2)
	waitImage(c, viewer.Token, d2, 10*time.Second, func(d imageDetail) bool { return slices.Contains(d.Tags, repo+":1") })
	waitImage(c, viewer.Token, d1, 5*time.Second, func(d imageDetail) bool { return len(d.Tags) == 0 })

	// A few more polls find nothing new.
	time.Sleep(300 * time.Millisecond)
	stop()

	jobs := scanJobs(t, dir)
	want := map[string]int{repo + "@" + d1: 1, repo + "@" + d2: 1}
	if fmt.Sprint(jobs) != fmt.Sprint(want) {
		t.Errorf("scan jobs = %v, want one per digest %v", jobs, want)
	}
	entries := verifyAudit(t, dir)
	wantLast := fmt.Sprintf("token:%d registry.put registry:local", admin.ID)
	if len(entries) != 4 || entries[3] != wantLast {
		t.Errorf("audit log:\n%s\nwant 4 entries ending in %q", strings.Join(entries, "\n"), wantLast)
	}
}

// A push notification queues a scan at once, without waiting for a poll.
func TestServerRegistryNotification(t *testing.T) {
	reg := registrytest.New(t)
	dir := t.TempDir()
	admin := bootstrap(t, dir)
	c, stop := startServerWith(t, dir, func(cfg *Config) { cfg.WatchInterval = time.Hour })

	var viewer, operator api.TokenCreated
	c.json("POST", "/api/v1/tokens", admin.Token, map[string]string{"name": "dash", "role": "viewer"}, http.StatusCreated, &viewer)
	c.json("POST", "/api/v1/tokens", admin.Token, map[string]string{"name": "hook", "role": "operator"}, http.StatusCreated, &operator)
	c.json("POST", "/api/v1/registries", admin.Token, map[string]any{"name": "local", "url": "http://" + reg.Host, "repositories": []string{"team/app"}}, http.StatusCreated, nil)

	// Pushed after the first poll: only the notification can find it.
	time.Sleep(200 * time.Millisecond)
	img, d := variantImage(t, "notified")
	reg.Push(t, "team/other:7", img)
	code, _ := c.do("GET", "/api/v1/images/"+d, viewer.Token, nil)
	if code != http.StatusNotFound {
		t.Fatalf("image known before the notification: %d", code)
	}

	envelope := map[string]any{"events": []map[string]any{
		{
			"id": "e1", "timestamp": "2026-11-22T10:00:00Z", "action": "push",
			"target": map[string]any{
				"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 1234,
				"digest": d, "length": 1234, "repository": "team/other",
				"url": "http://" + reg.Host + "/v2/team/other/manifests/" + d, "tag": "7",
			},
			"request": map[string]any{"id": "r1", "addr": "127.0.0.1:5555", "host": reg.Host, "method": "PUT", "useragent": "docker"},
			"actor":   map[string]any{}, "source": map[string]any{"addr": "reg:5000", "instanceID": "i"},
		},
		{
			"id": "e2", "action": "push",
			"target":  map[string]any{"mediaType": "application/octet-stream", "digest": "sha256:" + strings.Repeat("a", 64), "repository": "team/other"},
			"request": map[string]any{"host": reg.Host},
		},
		{
			"id": "e3", "action": "pull",
			"target":  map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "repository": "team/other"},
			"request": map[string]any{"host": reg.Host},
		},
	}}
	for _, tc := range []struct {
		token string
		want  int
	}{
		{"", http.StatusUnauthorized},
		{"bwk_not-a-token", http.StatusUnauthorized},
		{viewer.Token, http.StatusForbidden},
	} {
		if code, b := c.do("POST", "/api/v1/notifications/registry", tc.token, envelope); code != tc.want {
			t.Errorf("notification with token %q: %d, want %d: %s", tc.token, code, tc.want, b)
		}
	}
	c.json("POST", "/api/v1/notifications/registry", operator.Token, json.RawMessage(`{"events": [`), http.StatusBadRequest, nil)

	var accepted struct {
		Jobs []struct {
			Job   int64  `json:"job"`
			Image string `json:"image"`
		} `json:"jobs"`
		Ignored int `json:"ignored"`
	}
	c.json("POST", "/api/v1/notifications/registry", operator.Token, envelope, http.StatusAccepted, &accepted)
	wantRef := reg.Host + "/team/other@" + d
	if len(accepted.Jobs) != 1 || accepted.Jobs[0].Image != wantRef || accepted.Ignored != 2 {
		t.Fatalf("accepted: %+v", accepted)
	}
	// Scanned long before the hour-long poll interval: the notification
	// queued it (waitImage gives up after 10 s).
	got := waitImage(c, viewer.Token, d, 10*time.Second, nil)
	if got.Repository != reg.Host+"/team/other" || got.Packages != 3 || !slices.Equal(got.Tags, []string{reg.Host + "/team/other:7"}) {
		t.Errorf("image: %+v", got)
	}
	stop()

	entries := verifyAudit(t, dir)
	wantLast := fmt.Sprintf("token:%d registry.notification scan", operator.ID)
	if len(entries) != 5 || entries[4] != wantLast {
		t.Errorf("audit log:\n%s\nwant 5 entries ending in %q", strings.Join(entries, "\n"), wantLast)
	}
}

// A poll moves the last-seen time of a known digest and forgets tags
// deleted from the registry, so their digest shows as untagged.
func TestWatchLastSeenAndDeletedTags(t *testing.T) {
	ctx := t.Context()
	reg := registrytest.New(t)
	img, d := variantImage(t, "seen")
	reg.Push(t, "team/app:1", img)
	reg.Push(t, "team/app:old", img)

	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	st.Now = func() time.Time { return now }
	id, err := st.PutRegistry(ctx, store.Registry{Name: "local", URL: "http://" + reg.Host})
	if err != nil {
		t.Fatal(err)
	}
	st.AddRepository(ctx, id, "team/app")
	repo := reg.Host + "/team/app"
	if err := st.PutImage(ctx, store.Image{Digest: d, Repository: repo}); err != nil {
		t.Fatal(err)
	}
	w := &watcher{store: st, log: slog.New(slog.DiscardHandler), interval: time.Hour}

	now = now.Add(48 * time.Hour)
	if err := w.poll(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := st.Image(ctx, d)
	if !got.LastSeen.Equal(now) || got.FirstSeen.Equal(now) {
		t.Errorf("after a poll: first seen %s, last seen %s, want last seen %s", got.FirstSeen, got.LastSeen, now)
	}
	tags, _ := st.Tags(ctx, repo)
	if len(tags) != 2 {
		t.Fatalf("tags after the first poll: %+v", tags)
	}

	ref, _ := name.ParseReference(reg.Ref("team/app:old"))
	if err := remote.Delete(ref); err != nil {
		t.Fatal(err)
	}
	if err := w.poll(ctx); err != nil {
		t.Fatal(err)
	}
	tags, _ = st.Tags(ctx, repo)
	if len(tags) != 1 || tags[0].Tag != "1" {
		t.Errorf("tags after deleting :old in the registry: %+v, want only :1", tags)
	}
}
