package controle2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	corev1 "k8s.io/api/core/v1"

	"github.com/bulwark-sec/bulwark/internal/containerdtest"
	"github.com/bulwark-sec/bulwark/internal/k8stest"
)

// buildProbe compiles the agent's test probe (a static binary serving
// commands on a unix socket).
func buildProbe(t *testing.T) []byte { return containerdtest.BuildStatic(t, "../agent/testdata/probe") }

// probeImage is the probe (entrypoint: serve /ctl) with an npm lodash of
// version, so that a lodash advisory revokes it.
func probeImage(t *testing.T, probe []byte, lodash string) v1.Image {
	t.Helper()
	img, err := containerdtest.ImageOf(map[string][]byte{"bin/probe": probe, "tmp/": nil, "ctl/": nil,
		"app/node_modules/lodash/package.json": fmt.Appendf(nil, `{"name": "lodash", "version": %q}`, lodash)},
		[]string{"/bin/probe", "serve", "/ctl"})
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: time.Now().Add(-time.Hour)}
	if lodash == "4.17.15" { // the newer build
		cf.Created = v1.Time{Time: time.Now().Add(-time.Minute)}
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// probeDo sends one command to the probe whose socket is in dir.
func probeDo(t *testing.T, dir, cmd string) string {
	return containerdtest.Ask(t, filepath.Join(dir, "ctl.sock"), cmd)
}

// runningPod waits for a Running pod of app web in shop other than
// notUID and returns it.
func runningPod(t *testing.T, cl *k8stest.Cluster, notUID string, within time.Duration) corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, err := cl.Kubectl("get", "pods", "-n", "shop", "-l", "app=web", "-o", "json")
		if err == nil {
			var pods corev1.PodList
			json.Unmarshal([]byte(out), &pods)
			for _, p := range pods.Items {
				if string(p.UID) != notUID && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil &&
					len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready {
					return p
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Running pod of web (other than %s) within %s: %v %s", notUID, within, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// api is a client of the server's API.
type api struct {
	t    *testing.T
	base string
}

func (c *api) call(method, path, token string, body any, want int, out any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, c.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// waitFor polls cond every 50 ms within d.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
