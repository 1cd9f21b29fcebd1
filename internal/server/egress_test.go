package server

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// The egress policy decides on the address dialled, after DNS: a name
// that resolves to loopback ("localhost") is refused like 127.0.0.1, and
// so are private, link-local (cloud metadata) and CGNAT addresses, unless
// the host is allowed.
func TestEgressRefusesNonPublicAddresses(t *testing.T) {
	hits := atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, tc := range []struct {
		allow []string
		url   string
		ok    bool
	}{
		{nil, srv.URL, false},
		{nil, "http://localhost:" + port, false}, // resolves to loopback
		{[]string{"127.0.0.1"}, srv.URL, true},
		{[]string{"127.0.0.1:" + port}, srv.URL, true},
		{[]string{"127.0.0.1:1"}, srv.URL, false}, // another port
		{[]string{"localhost"}, "http://localhost:" + port, true},
		{[]string{"*"}, srv.URL, true},
	} {
		client := &http.Client{Transport: (&egress{allow: tc.allow}).transport(), Timeout: 5 * time.Second}
		resp, err := client.Get(tc.url)
		if err == nil {
			resp.Body.Close()
		}
		if tc.ok != (err == nil) || !tc.ok && !refused(err) {
			t.Errorf("allow %v, GET %s: %v, want ok=%v (or a refusal)", tc.allow, tc.url, err, tc.ok)
		}
	}
	if hits.Load() != 4 {
		t.Errorf("%d requests reached the server, want the 4 allowed", hits.Load())
	}
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "100.64.0.1": false, "0.0.0.0": false, "::1": false,
		"fe80::1": false, "fd00::1": false, "::ffff:127.0.0.1": false, "224.0.0.1": false,
	} {
		if got := public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("public(%s) = %v, want %v", addr, got, want)
		}
	}
}

// POST /api/v1/scans of an image on a loopback registry the server was
// not told to allow: the scan fails with the refusal and the registry
// sees no request (SSRF); allowed, the same registry is scanned.
func TestServerRefusesPrivateAddresses(t *testing.T) {
	reg := registrytest.New(t)
	var hits atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "no", http.StatusNotFound)
	}))
	defer proxy.Close()
	victim := strings.TrimPrefix(proxy.URL, "http://")
	reg.Push(t, "shop/web:1", lodashImage(t, "4.17.21", time.Now()))

	dir := t.TempDir()
	admin := bootstrap(t, dir)
	c, _ := startServerWith(t, dir, func(cfg *Config) {
		cfg.WatchInterval = time.Hour
		cfg.AllowPrivate = []string{reg.Host} // the registry, not the victim
	})
	_, operator := roleTokens(c, admin)
	var job struct {
		Job int64 `json:"job"`
	}
	c.json("POST", "/api/v1/scans", operator.Token, map[string]string{"image": victim + "/internal/secret:1"}, http.StatusAccepted, &job)
	deadline := time.Now().Add(10 * time.Second)
	var got struct {
		State    string `json:"state"`
		Attempts int    `json:"attempts"`
		Error    string `json:"error"`
	}
	for time.Now().Before(deadline) {
		c.json("GET", "/api/v1/jobs/"+strconv.FormatInt(job.Job, 10), admin.Token, nil, http.StatusOK, &got)
		if got.Attempts > 0 && got.State != store.JobRunning && got.Error != "" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(got.Error, "not a public address") {
		t.Errorf("scan of a loopback address: job %+v, want refused", got)
	}
	if hits.Load() != 0 {
		t.Errorf("the loopback service got %d requests", hits.Load())
	}
	waitScan(t, c, operator.Token, reg.Ref("shop/web:1")) // allowed
}
