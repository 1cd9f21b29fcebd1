// Command secret-release measures the secret store's release latency: a
// Service on a SQLite store in a temporary directory (file KEK), deciding
// from the server's store-backed workload trust (secretstore.Trust over an
// agent heartbeat, a certification, an owner application), its
// workload API on a loopback mTLS listener, and workloads fetching a
// policy-bound secret (SPIFFE glob, certified under a policy, no drift,
// region, data-class grant) with their X.509-SVIDs at a fixed rate. It
// prints the server-side latency (the handler, including the audit
// entry each release writes) and the client-side latency, p50/p99/max.
//
//	go run ./bench/secret-release -rate 500 -duration 30s
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/secretstore"
	"github.com/bulwark-sec/bulwark/internal/secretstore/svidtest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

func main() {
	rate := flag.Int("rate", 500, "releases per second")
	duration := flag.Duration("duration", 30*time.Second, "how long to send")
	clients := flag.Int("workloads", 32, "workloads (each its own SVID and connection)")
	flag.Parse()
	if err := run(*rate, *duration, *clients); err != nil {
		log.Fatal(err)
	}
}

type auditor struct{ st *store.Store }

func (a auditor) Do(ctx context.Context, fn func(tx *store.Store) ([]audit.Entry, error)) error {
	_, err := a.st.Audited(ctx, fn)
	return err
}

type catalogue struct{}

func (catalogue) ClassRegions(c string) ([]string, bool) { return []string{"eu-west-1"}, c == "pii-eu" }

type grants struct{}

func (grants) Granted(app, class string) bool { return app == "payments" && class == "pii-eu" }

func run(rate int, duration time.Duration, n int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "secret-release")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(ctx, filepath.Join(dir, "bulwark.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	key, err := seal.New(make([]byte, 32))
	if err != nil {
		return err
	}
	// The workloads as the server knows them: an agent's heartbeat on
	// node-1 (region eu-west-1), a certified digest owned by payments;
	// the store-backed Trust names and judges them, refreshed every second
	// while the bench runs, as in the server.
	const digest = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	var pods []agentproto.Container
	for i := range n {
		pods = append(pods, agentproto.Container{ID: fmt.Sprintf("c%d", i), Namespace: "k8s.io", Image: digest,
			Labels: map[string]string{agentproto.LabelPodNamespace: "payments", agentproto.LabelPodName: fmt.Sprintf("w%d", i)}})
	}
	cj, _ := json.Marshal(pods)
	if _, err := st.PutNode(ctx, store.Node{Name: "node-1", Mode: "prevent", State: "enforcing (fanotify)", Containers: string(cj)}); err != nil {
		return err
	}
	if err := st.PutImage(ctx, store.Image{Digest: digest, Repository: "registry.example/payments"}); err != nil {
		return err
	}
	if err := st.SetCertification(ctx, digest, store.Certified, "bench"); err != nil {
		return err
	}
	if _, err := st.PutApplication(ctx, store.Application{Name: "payments", Lifecycle: store.LifecycleActive,
		Repositories: []string{"registry.example/payments"}}); err != nil {
		return err
	}
	tmpl, err := identity.ParseTemplate(identity.WorkloadTemplate)
	if err != nil {
		return err
	}
	ws := &secretstore.Trust{Store: st, TrustDomain: spiffeid.RequireTrustDomainFromString("prod.example"), Template: tmpl,
		Policy: "gold", Region: func(string) string { return "eu-west-1" }}
	if err := ws.Refresh(ctx); err != nil {
		return err
	}
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	go ws.Run(tctx)
	s, err := secretstore.New(ctx, secretstore.Config{Store: st, KEK: secretstore.NewFileKEK(key), Auditor: auditor{st},
		Catalogue: catalogue{}, Workloads: ws, Grants: grants{}})
	if err != nil {
		return err
	}
	pol := secretstore.Policy{SPIFFEIDs: []string{"spiffe://prod.example/ns/payments/**"}, CertifiedUnder: "gold",
		NoDrift: true, Regions: []string{"eu-west-1"}, RequireGrant: true}
	if _, err := s.Put(ctx, "bench", "payments/db", secretstore.Spec{Kind: secretstore.KindKV, Classes: []string{"pii-eu"}, Policy: pol},
		secretstore.Value{Data: map[string]string{"password": "x"}}); err != nil {
		return err
	}
	ca, err := svidtest.New()
	if err != nil {
		return err
	}
	serverCert, err := ca.Issue()
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var server, client []time.Duration
	h := secretstore.NewHandler(s, nil)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		h.ServeHTTP(w, r)
		d := time.Since(t0)
		mu.Lock()
		server = append(server, d)
		mu.Unlock()
	}))
	srv.TLS = secretstore.TLSConfig(serverCert, ca.Pool)
	srv.StartTLS()
	defer srv.Close()
	cs := make([]*http.Client, n)
	for i := range n {
		cert, err := ca.Issue(fmt.Sprintf("spiffe://prod.example/ns/payments/pod/w%d", i))
		if err != nil {
			return err
		}
		cs[i] = ca.Client(&cert)
	}
	fetch := func(c *http.Client) error {
		resp, err := c.Get(srv.URL + secretstore.WorkloadPath + "payments/db")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
	for _, c := range cs { // connections up, value opened
		if err := fetch(c); err != nil {
			return err
		}
	}
	mu.Lock()
	server = server[:0]
	mu.Unlock()
	var wg sync.WaitGroup
	var errs int
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.Now().Add(duration)
	for i := 0; time.Now().Before(end); i++ {
		<-tick.C
		wg.Add(1)
		go func(c *http.Client) {
			defer wg.Done()
			t0 := time.Now()
			err := fetch(c)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				return
			}
			client = append(client, d)
		}(cs[i%n])
	}
	wg.Wait()
	fmt.Printf("secret releases at %d/s for %v over mTLS, %d workloads, SQLite, every release audited\n", rate, duration, n)
	fmt.Printf("server (handler + audit): %s\n", summary(server))
	fmt.Printf("client (request over TLS): %s\n", summary(client))
	fmt.Printf("errors: %d\n", errs)
	return nil
}

func summary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", len(ds), q(0.50).Round(time.Microsecond), q(0.99).Round(time.Microsecond), ds[len(ds)-1].Round(time.Microsecond))
}
