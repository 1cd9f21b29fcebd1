package workloadapi

import (
	"context"
	"crypto"
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bulwark-sec/bulwark/internal/identity"
)

var td = spiffeid.RequireTrustDomainFromString("prod.example")

// localIssuer is the server's issuance in process: identity.Issuer over a
// table of facts, and a change feed the test pushes to.
type localIssuer struct {
	*identity.Issuer
	mu      sync.Mutex
	facts   map[string]identity.Facts // by image digest
	drifted map[string]bool           // by container
	records []identity.Record
	changes chan []string
	silent  bool // the node is not heard from
	fed     []*spiffebundle.Bundle
}

// FederatedBundles makes localIssuer a Federator.
func (li *localIssuer) FederatedBundles(context.Context) ([]*spiffebundle.Bundle, error) {
	li.mu.Lock()
	defer li.mu.Unlock()
	return li.fed, nil
}

func newLocalIssuer(t testing.TB) *localIssuer {
	t.Helper()
	root, err := identity.NewRoot(td, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, err := identity.New(identity.Config{TrustDomain: td, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	tmpl, _ := identity.ParseTemplate(identity.DefaultTemplate)
	li := &localIssuer{facts: map[string]identity.Facts{}, drifted: map[string]bool{}, changes: make(chan []string, 16)}
	li.Issuer = &identity.Issuer{Authority: a, Template: tmpl,
		Facts: func(_ context.Context, w identity.Workload) (identity.Facts, error) {
			li.mu.Lock()
			defer li.mu.Unlock()
			f := li.facts[w.Image]
			f.Image, f.Heartbeat, f.Drifted = w.Image, time.Now(), li.drifted[w.Container]
			if li.silent {
				f.Heartbeat = time.Time{}
			}
			return f, nil
		},
		Record: func(_ context.Context, r identity.Record) error {
			li.mu.Lock()
			li.records = append(li.records, r)
			li.mu.Unlock()
			return nil
		}}
	return li
}

func (li *localIssuer) set(digest string, f identity.Facts) {
	li.mu.Lock()
	li.facts[digest] = f
	li.mu.Unlock()
}

// IssueX509 is the server's issuance over the key's public part.
func (li *localIssuer) IssueX509(ctx context.Context, w identity.Workload, key crypto.Signer) (identity.X509SVID, error) {
	return li.Issuer.IssueX509(ctx, w, key.Public())
}

func (li *localIssuer) Bundle(context.Context) (*spiffebundle.Bundle, error) {
	return li.Authority.Bundle(), nil
}

func (li *localIssuer) Changes(ctx context.Context, seq int64) ([]string, int64, error) {
	if seq < 0 {
		return nil, 1, nil
	}
	select {
	case ds := <-li.changes:
		return ds, seq + 1, nil
	case <-ctx.Done():
		return nil, seq, ctx.Err()
	}
}

const certified = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

type fixture struct {
	li      *localIssuer
	m       *Manager
	addr    string
	mu      sync.Mutex
	workers map[int]identity.Workload // pid -> workload
}

// start serves the Workload API with this test process attributed to w
// (nil: a host process).
func start(t *testing.T, w *identity.Workload) *fixture {
	t.Helper()
	f := &fixture{li: newLocalIssuer(t), workers: map[int]identity.Workload{}}
	f.li.set(certified, identity.Facts{Certified: true})
	if w != nil {
		f.workers[os.Getpid()] = *w
	}
	f.m = NewManager(ManagerConfig{Issuer: f.li, Every: 50 * time.Millisecond, Workloads: func() []identity.Workload {
		f.mu.Lock()
		defer f.mu.Unlock()
		var ws []identity.Workload
		for _, w := range f.workers {
			ws = append(ws, w)
		}
		return ws
	}})
	resolve := func(pid int) (identity.Workload, bool) {
		f.mu.Lock()
		defer f.mu.Unlock()
		w, ok := f.workers[pid]
		return w, ok
	}
	dir, err := os.MkdirTemp("", "bwwl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "api.sock")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); f.m.Run(ctx) }()
	srv := NewServer(f.m, resolve, nil)
	go func() { defer wg.Done(); srv.Serve(ctx, sock) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	f.addr = "unix://" + sock
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return f
}

func cart(image string) *identity.Workload {
	return &identity.Workload{Node: "n1", Container: "c1", Image: image, Namespace: "shop", ServiceAccount: "cart"}
}

func client(t *testing.T, f *fixture) *workloadapi.Client {
	t.Helper()
	c, err := workloadapi.New(context.Background(), workloadapi.WithAddr(f.addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestGoSpiffeClientGetsSVIDAndDoesMTLS(t *testing.T) {
	f := start(t, cart(certified))
	c := client(t, f)
	ctx := ctxT(t, 30*time.Second)
	svid, err := c.FetchX509SVID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := "spiffe://prod.example/ns/shop/sa/cart"
	if svid.ID.String() != want {
		t.Fatalf("got %s, want %s", svid.ID, want)
	}
	bundles, err := c.FetchX509Bundles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// mTLS between two peers holding SVIDs of this trust domain, each
	// checking the other's SPIFFE ID.
	id := spiffeid.RequireFromString(want)
	l, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.MTLSServerConfig(svid, bundles, tlsconfig.AuthorizeID(id)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				io.Copy(conn, io.LimitReader(conn, 5))
			}()
		}
	}()
	conn, err := tls.Dial("tcp", l.Addr().String(), tlsconfig.MTLSClientConfig(svid, bundles, tlsconfig.AuthorizeID(id)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("mTLS echo: %q %v", buf, err)
	}
	// Another ID is refused by the authorizer.
	other := spiffeid.RequireFromString("spiffe://prod.example/ns/shop/sa/other")
	if c2, err := tls.Dial("tcp", l.Addr().String(), tlsconfig.MTLSClientConfig(svid, bundles, tlsconfig.AuthorizeID(other))); err == nil {
		c2.Close()
		t.Fatal("connected to a peer whose ID was not the one asked for")
	}

	// JWT-SVIDs: fetched, validated through the Workload API, refused for
	// another audience.
	js, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ValidateJWTSVID(ctx, js.Marshal(), "db")
	if err != nil || got.ID.String() != want {
		t.Fatalf("validate: %v %v", got, err)
	}
	if _, err := c.ValidateJWTSVID(ctx, js.Marshal(), "queue"); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("another audience: %v", err)
	}
	// The issuances are recorded.
	f.li.mu.Lock()
	defer f.li.mu.Unlock()
	kinds := map[string]int{}
	for _, r := range f.li.records {
		if r.Refusal == nil && r.Workload.Image == certified {
			kinds[r.Kind]++
		}
	}
	if kinds["x509-svid"] == 0 || kinds["jwt-svid"] == 0 {
		t.Fatalf("records %v", kinds)
	}
}

func TestUncertifiedAndHostCallersGetPermissionDenied(t *testing.T) {
	uncertified := "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	for name, w := range map[string]*identity.Workload{"uncertified": cart(uncertified), "host": nil} {
		t.Run(name, func(t *testing.T) {
			f := start(t, w)
			ctx := ctxT(t, 30*time.Second)
			stream := rawStream(t, ctx, f, true)
			_, err := stream.Recv()
			if status.Code(err) != codes.PermissionDenied {
				t.Fatalf("got %v, want PermissionDenied", err)
			}
			c := client(t, f)
			if _, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db"}); status.Code(err) != codes.PermissionDenied {
				t.Fatalf("JWT: got %v, want PermissionDenied", err)
			}
			if name == "uncertified" {
				f.li.mu.Lock()
				defer f.li.mu.Unlock()
				if len(f.li.records) == 0 || f.li.records[0].Refusal == nil || f.li.records[0].Refusal.Reason != identity.ReasonUncertified {
					t.Fatalf("refusal not recorded: %+v", f.li.records)
				}
			}
		})
	}
}

func rawStream(t *testing.T, ctx context.Context, f *fixture, header bool) workload.SpiffeWorkloadAPI_FetchX509SVIDClient {
	t.Helper()
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if header {
		ctx = metadata.AppendToOutgoingContext(ctx, "workload.spiffe.io", "true")
	}
	s, err := workload.NewSpiffeWorkloadAPIClient(conn).FetchX509SVID(ctx, &workload.X509SVIDRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// withdrawn waits for the stream to end and returns how long after start
// it did.
func withdrawn(t *testing.T, s workload.SpiffeWorkloadAPI_FetchX509SVIDClient, trigger func()) time.Duration {
	t.Helper()
	if _, err := s.Recv(); err != nil {
		t.Fatalf("first answer: %v", err)
	}
	start := time.Now()
	trigger()
	for {
		_, err := s.Recv()
		if err == nil {
			continue // a bundle or renewal update
		}
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("stream ended with %v, want PermissionDenied", err)
		}
		return time.Since(start)
	}
}

func TestDriftAndRevocationEndTheStream(t *testing.T) {
	t.Run("drift", func(t *testing.T) {
		f := start(t, cart(certified))
		s := rawStream(t, ctxT(t, 30*time.Second), f, true)
		d := withdrawn(t, s, func() { f.m.Withdraw("c1", identity.ReasonDrifted, "exec of /tmp/x") })
		t.Logf("drift -> identity left the stream in %s", d)
		// Not given back on the next pass.
		time.Sleep(200 * time.Millisecond)
		if snap := f.m.snapshot("c1"); snap.svid != nil {
			t.Fatal("a drifted container got its identity back")
		}
	})
	t.Run("revocation", func(t *testing.T) {
		f := start(t, cart(certified))
		s := rawStream(t, ctxT(t, 30*time.Second), f, true)
		d := withdrawn(t, s, func() {
			f.li.set(certified, identity.Facts{Certified: true, Revoked: true, RevokedReason: "CVE-2026-0001"})
			f.li.changes <- []string{certified}
		})
		t.Logf("revocation -> identity left the stream in %s", d)
		f.li.mu.Lock()
		last := f.li.records[len(f.li.records)-1]
		f.li.mu.Unlock()
		if last.Refusal == nil || last.Refusal.Reason != identity.ReasonRevoked {
			t.Fatalf("last record %+v", last)
		}
	})
	t.Run("certification", func(t *testing.T) {
		late := "sha256:3333333333333333333333333333333333333333333333333333333333333333"
		f := start(t, cart(late))
		ctx := ctxT(t, 30*time.Second)
		if _, err := rawStream(t, ctx, f, true).Recv(); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("before certification: %v", err)
		}
		begin := time.Now()
		f.li.set(late, identity.Facts{Certified: true})
		f.li.changes <- []string{late}
		for {
			_, err := rawStream(t, ctx, f, true).Recv()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatal("no SVID after certification")
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("certification -> first SVID in %s", time.Since(begin))
	})
}

func TestBadInput(t *testing.T) {
	f := start(t, cart(certified))
	ctx := ctxT(t, 60*time.Second)
	// No security header: InvalidArgument, as SPIRE answers.
	if _, err := rawStream(t, ctx, f, false).Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("no header: %v", err)
	}
	c := client(t, f)
	for name, tc := range map[string]struct{ tok, aud string }{
		"empty token":    {"", "db"},
		"no audience":    {"a.b.c", ""},
		"garbage":        {"not-a-jwt", "db"},
		"huge":           {strings.Repeat("x", 60<<10), "db"},
		"foreign domain": {foreignJWT(t), "db"},
		"expired":        {expiredJWT(t, f), "db"},
	} {
		if _, err := c.ValidateJWTSVID(ctx, tc.tok, tc.aud); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := c.FetchJWTSVID(ctx, jwtsvid.Params{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("no audience: %v", err)
	}
	if _, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db", Subject: spiffeid.RequireFromString("spiffe://prod.example/ns/kube-system/sa/admin")}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("someone else's ID: %v", err)
	}
	// Garbage on the socket, then a flood of connections: the API still
	// answers.
	path := strings.TrimPrefix(f.addr, "unix://")
	g, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	g.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\xff\x04garbage-frames-here"))
	g.Close()
	var conns []net.Conn
	for i := 0; i < 2*MaxConns; i++ {
		cn, err := net.Dial("unix", path)
		if err != nil {
			break // the backlog is full: the kernel refuses, the agent is untouched
		}
		conns = append(conns, cn)
	}
	t.Logf("flood: %d connections open", len(conns))
	for _, cn := range conns {
		cn.Close()
	}
	if _, err := c.FetchX509SVID(ctx); err != nil {
		t.Fatalf("after the flood: %v", err)
	}
}

func foreignJWT(t *testing.T) string {
	other := spiffeid.RequireTrustDomainFromString("evil.example")
	root, _ := identity.NewRoot(other, 0, time.Now())
	a, err := identity.New(identity.Config{TrustDomain: other, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := a.SignJWT(spiffeid.RequireFromString("spiffe://evil.example/x"), []string{"db"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func expiredJWT(t *testing.T, f *fixture) string {
	// Signed by the bundle's own JWT key, expired a minute ago.
	k := f.li.Authority.State().JWTKeys[0]
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.Key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.ID))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{Subject: "spiffe://prod.example/ns/shop/sa/cart", Audience: []string{"db"},
		IssuedAt: jwt.NewNumericDate(now.Add(-time.Hour)), Expiry: jwt.NewNumericDate(now.Add(-time.Minute))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestNodeSilentIsAskedAgainSoon: an identity refused because this node
// was not heard from is asked again within seconds (no change is pushed
// when the node is heard again), not after RetryRefused.
func TestNodeSilentIsAskedAgainSoon(t *testing.T) {
	li := newLocalIssuer(t)
	li.set(certified, identity.Facts{Certified: true})
	li.mu.Lock()
	li.silent = true
	li.mu.Unlock()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	w := *cart(certified)
	m := NewManager(ManagerConfig{Issuer: li, Every: 10 * time.Millisecond, Now: clock, RetryRefused: time.Hour,
		Workloads: func() []identity.Workload { return []identity.Workload{w} }})
	ctx := ctxT(t, 10*time.Second)
	go m.Run(ctx)
	waitStat := func(what string, ok func(ManagerStats) bool) {
		t.Helper()
		for !ok(m.Stats()) {
			if ctx.Err() != nil {
				t.Fatalf("waiting for %s: %+v", what, m.Stats())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitStat("the refusal", func(s ManagerStats) bool { return s.Refused >= 1 })
	li.mu.Lock()
	li.silent = false
	li.mu.Unlock()
	mu.Lock()
	now = now.Add(nodeSilentRetry + time.Second)
	mu.Unlock()
	waitStat("the issuance", func(s ManagerStats) bool { return s.Issued >= 1 })
}
