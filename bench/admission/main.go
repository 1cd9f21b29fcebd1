// Command admission is the admission webhook's load generator: it starts
// an in-process registry on 127.0.0.1 with a signed image, writes a
// webhook configuration trusting its key and a self-signed serving
// certificate, runs `bulwark admission serve` on them, warms the cache
// with one review, then posts AdmissionReviews of a Deployment using the
// certified digest at a fixed rate and reports client-side latency,
// server-side latency (the webhook's own /metrics) and errors.
//
//	go build -o /tmp/bulwark ./cmd/bulwark
//	go run ./bench/admission -bulwark /tmp/bulwark -rate 500 -duration 60s
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-sec/bulwark/internal/sign"
)

func main() {
	bin := flag.String("bulwark", "bulwark", "bulwark binary to run")
	rate := flag.Int("rate", 500, "requests per second")
	duration := flag.Duration("duration", 60*time.Second, "how long to send")
	workers := flag.Int("workers", 64, "concurrent senders (requests beyond them are counted as late)")
	flag.Parse()
	if err := run(*bin, *rate, *duration, *workers); err != nil {
		log.Fatal(err)
	}
}

func run(bin string, rate int, duration time.Duration, workers int) error {
	dir, err := os.MkdirTemp("", "bulwark-bench-admission")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// A registry with one certified image.
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		return err
	}
	ref, err := name.ParseReference(host + "/shop/api:1.4")
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img); err != nil {
		return err
	}
	h, _ := img.Digest()
	d := ref.Context().Digest(h.String())
	signer := sign.NewKeySigner(key)
	ctx := context.Background()
	if err := sign.SignImage(ctx, d, signer, nil, sign.Options{}); err != nil {
		return err
	}
	pred, _ := json.Marshal(map[string]any{"time": time.Now().UTC().Format(time.RFC3339), "policyDigest": "sha256:bench", "pass": true})
	if err := sign.AttestImage(ctx, d, signer, sign.DecisionPredicateType, pred, sign.Options{}); err != nil {
		return err
	}
	pub, err := sign.MarshalPublicKey(key.Public())
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pub"), pub, 0o644); err != nil {
		return err
	}
	cfg := `trust:
  keys: [key.pub]
  attestations: ["` + sign.DecisionPredicateType + `"]
pods:
  allowedCapabilities: [NET_BIND_SERVICE]
placement:
  sensitiveValues: [confidential]
  nodeSelector: {bulwark.dev/pool: sensitive}
  tolerations: [{key: bulwark.dev/pool, operator: Equal, value: sensitive, effect: NoSchedule}]
owners:
  labels: [owner]
`
	if err := os.WriteFile(filepath.Join(dir, "admission.yaml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	certPEM, keyPEM, pool, err := selfSigned()
	if err != nil {
		return err
	}
	_ = os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o644)
	_ = os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600)

	// The webhook, as a separate process.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "admission", "serve", "--admission-config", filepath.Join(dir, "admission.yaml"),
		"--listen", addr, "--tls-cert", filepath.Join(dir, "tls.crt"), "--tls-key", filepath.Join(dir, "tls.key"), "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}}
	base := "https://" + addr
	if err := waitReady(client, base+"/readyz"); err != nil {
		return err
	}
	body := reviewBody(d.String())
	// Warm-up: the first review verifies the digest against the registry
	// and caches it.
	if ok, msg, err := send(client, base+"/validate", body); err != nil || !ok {
		return fmt.Errorf("warm-up review: allowed=%v %s %v", ok, msg, err)
	}

	total := int(float64(rate) * duration.Seconds())
	fmt.Printf("sending %d AdmissionReviews (Deployment, certified digest) at %d/s for %s with %d senders to %s\n", total, rate, duration, workers, base)
	lat := make([]time.Duration, total)
	var errs, denied, late atomic.Int64
	jobs := make(chan int, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				start := time.Now()
				ok, _, err := send(client, base+"/validate", body)
				lat[i] = time.Since(start)
				switch {
				case err != nil:
					errs.Add(1)
				case !ok:
					denied.Add(1)
				}
			}
		})
	}
	interval := time.Second / time.Duration(rate)
	begin := time.Now()
	for i := range total {
		if wait := time.Until(begin.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case jobs <- i:
		default:
			late.Add(1) // every sender busy: send anyway, but count it
			jobs <- i
		}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(begin)
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Printf("sent %d in %s (%.0f/s); errors %d, denied %d, queued behind busy senders %d\n", total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), errs.Load(), denied.Load(), late.Load())
	fmt.Printf("client-side (TLS, HTTP, JSON): p50 %s  p99 %s  max %s\n", q(0.50), q(0.99), lat[len(lat)-1])
	server, err := serverQuantiles(client, base+"/metrics")
	if err != nil {
		return err
	}
	fmt.Printf("server-side (handler, from /metrics over the last 65536 requests; max since start): %s\n", server)
	if errs.Load() > 0 || denied.Load() > 0 {
		return fmt.Errorf("%d errors, %d denials", errs.Load(), denied.Load())
	}
	return nil
}

func reviewBody(image string) []byte {
	obj := map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "api", "namespace": "shop"},
		"spec": map[string]any{"template": map[string]any{
			"metadata": map[string]any{"labels": map[string]any{"owner": "shop-team", "app": "api"}},
			"spec": map[string]any{
				"securityContext": map[string]any{"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": map[string]any{"type": "RuntimeDefault"}},
				"containers": []any{map[string]any{"name": "app", "image": image,
					"securityContext": map[string]any{"allowPrivilegeEscalation": false, "capabilities": map[string]any{"drop": []any{"ALL"}}}}},
			}}}}
	b, _ := json.Marshal(map[string]any{
		"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"request": map[string]any{
			"uid": "bench", "kind": map[string]any{"group": "apps", "version": "v1", "kind": "Deployment"},
			"resource":  map[string]any{"group": "apps", "version": "v1", "resource": "deployments"},
			"namespace": "shop", "operation": "CREATE", "object": obj,
			"userInfo": map[string]any{"username": "bench"},
		}})
	return b
}

func send(c *http.Client, url string, body []byte) (bool, string, error) {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return false, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return false, "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	var out struct {
		Response struct {
			Allowed bool `json:"allowed"`
			Status  struct {
				Message string `json:"message"`
			} `json:"status"`
		} `json:"response"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return false, "", err
	}
	return out.Response.Allowed, out.Response.Status.Message, nil
}

func waitReady(c *http.Client, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after 30 s", url)
}

// serverQuantiles reads the validating webhook's quantiles from /metrics.
func serverQuantiles(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var parts []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, `bulwark_admission_request_duration_quantile_seconds{webhook="validate"`) {
			continue
		}
		var v float64
		fields := strings.Fields(line)
		fmt.Sscanf(fields[len(fields)-1], "%g", &v)
		label := map[string]string{"0.5": "p50", "0.99": "p99", "1": "max"}[strings.Split(strings.Split(line, `quantile="`)[1], `"`)[0]]
		parts = append(parts, fmt.Sprintf("%s %s", label, time.Duration(v*float64(time.Second))))
	}
	return strings.Join(parts, "  "), sc.Err()
}

func selfSigned() (certPEM, keyPEM []byte, pool *x509.CertPool, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bulwark-admission"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), pool, nil
}
