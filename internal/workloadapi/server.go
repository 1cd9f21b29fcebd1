package workloadapi

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/bulwark-sec/bulwark/internal/identity"
)

// Limits against a flood of callers on the socket.
const (
	MaxConns          = 1024 // connections open at once; more wait in the kernel's backlog
	MaxConnsPerCaller = 64   // of them, held by one container (or all unattributed callers); more are closed
	MaxStreamsPerConn = 16
	maxRecvMsg        = 64 << 10
	maxAudiences      = identity.MaxAudiences
)

// Resolve attributes a pid to the workload it runs in; false for a
// process that is in no watched container (the host, a runtime helper).
type Resolve func(pid int) (identity.Workload, bool)

// Server is the Workload API of one node.
type Server struct {
	m       *Manager
	resolve Resolve
	log     *slog.Logger
	workload.UnimplementedSpiffeWorkloadAPIServer
}

// NewServer returns the Workload API over m, attributing callers with
// resolve.
func NewServer(m *Manager, resolve Resolve, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{m: m, resolve: resolve, log: log}
}

// Serve listens on the unix socket path (replacing a stale socket; mode
// 0666, since workloads of any uid call it: the kernel, not the file
// mode, says who they are) and serves until ctx ends.
func (s *Server) Serve(ctx context.Context, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating the Workload API socket's directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == os.ModeSocket {
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listening on %q: %w", path, err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		l.Close()
		return fmt.Errorf("opening %q to workloads: %w", path, err)
	}
	return s.ServeListener(ctx, l)
}

// ServeListener serves on l (a unix listener) until ctx ends.
func (s *Server) ServeListener(ctx context.Context, l net.Listener) error {
	g := grpc.NewServer(grpc.Creds(callerCreds{}), grpc.MaxConcurrentStreams(MaxStreamsPerConn),
		grpc.MaxRecvMsgSize(maxRecvMsg), grpc.ConnectionTimeout(5*time.Second))
	workload.RegisterSpiffeWorkloadAPIServer(g, s)
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			g.Stop() // streams end; workloads reconnect to the next agent
		case <-done:
		}
	}()
	err := g.Serve(newLimitListener(l, MaxConns, MaxConnsPerCaller, s.attribution, s.log))
	close(done)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// attribution is the key a caller's connections are counted under: its
// container, or "" for every process in no watched container (they get no
// identity anyway, and share one cap).
func (s *Server) attribution(pid int) string {
	if w, ok := s.resolve(pid); ok {
		return "container:" + w.Container
	}
	return ""
}

// errNoIdentity is SPIRE's answer to a caller without identity, which
// go-spiffe clients treat as "not entitled" and retry with backoff.
func errNoIdentity(why string) error {
	return status.Error(codes.PermissionDenied, "no identity issued: "+why)
}

// caller checks the security header and attributes the caller.
func (s *Server) caller(ctx context.Context) (identity.Workload, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("workload.spiffe.io"); len(v) != 1 || v[0] != "true" {
		return identity.Workload{}, status.Error(codes.InvalidArgument, "security header missing from request")
	}
	c, ok := callerOf(ctx)
	if !ok {
		return identity.Workload{}, status.Error(codes.Internal, "the caller's credentials are unknown")
	}
	w, ok := s.resolve(c.PID)
	// The pid may have exited and been reused between connect and now:
	// the pidfd says whether it is still the process that connected.
	if !c.Alive() {
		return identity.Workload{}, errNoIdentity("the calling process exited")
	}
	if !ok {
		return identity.Workload{}, errNoIdentity("the caller is not in a watched container")
	}
	return w, nil
}

// FetchX509SVID streams the caller's X.509-SVID: at once, at every renewal
// and bundle change; it ends with PermissionDenied when the identity is
// refused or withdrawn (drift, revocation), which is how the Workload API
// says a caller lost its identity.
func (s *Server) FetchX509SVID(_ *workload.X509SVIDRequest, stream workload.SpiffeWorkloadAPI_FetchX509SVIDServer) error {
	var last *x509.Certificate
	var lastBundle *spiffebundle.Bundle
	return s.follow(stream.Context(), func(snap snapshot) error {
		if snap.svid == nil || snap.bundle == nil || (snap.svid.Certificates[0] == last && snap.bundle == lastBundle) {
			return nil
		}
		resp, err := x509Response(snap)
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		last, lastBundle = snap.svid.Certificates[0], snap.bundle
		return nil
	})
}

// follow resolves the caller and calls send with its container's snapshot
// at once and at every change, until the caller leaves (nil), send fails,
// or the identity is refused or withdrawn (PermissionDenied). send keeps
// its own record of what it last sent.
func (s *Server) follow(ctx context.Context, send func(snapshot) error) error {
	w, err := s.caller(ctx)
	if err != nil {
		return err
	}
	for {
		snap := s.m.snapshot(w.Container)
		if snap.refusal != nil {
			return errNoIdentity(snap.refusal.Error())
		}
		if err := send(snap); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-snap.changed:
		}
	}
}

// onBundleChange is a send for follow that calls send once a trust bundle
// is known and again each time it changes.
func onBundleChange(send func(snapshot) error) func(snapshot) error {
	var last *spiffebundle.Bundle
	return func(snap snapshot) error {
		if snap.bundle == nil || snap.bundle == last {
			return nil
		}
		if err := send(snap); err != nil {
			return err
		}
		last = snap.bundle
		return nil
	}
}

func x509Response(snap snapshot) (*workload.X509SVIDResponse, error) {
	certs, key, err := snap.svid.MarshalRaw()
	if err != nil {
		return nil, fmt.Errorf("encoding the X.509-SVID: %w", err)
	}
	resp := &workload.X509SVIDResponse{Svids: []*workload.X509SVID{{
		SpiffeId: snap.svid.ID.String(), X509Svid: certs, X509SvidKey: key, Bundle: rawCerts(snap.bundle.X509Authorities()),
	}}}
	for _, b := range snap.federated {
		if len(b.X509Authorities()) > 0 {
			if resp.FederatedBundles == nil {
				resp.FederatedBundles = map[string][]byte{}
			}
			resp.FederatedBundles[b.TrustDomain().IDString()] = rawCerts(b.X509Authorities())
		}
	}
	return resp, nil
}

func rawCerts(cs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range cs {
		b.Write(c.Raw)
	}
	return b.Bytes()
}

// FetchX509Bundles streams the trust bundle's X.509 roots to a caller
// that holds an identity.
func (s *Server) FetchX509Bundles(_ *workload.X509BundlesRequest, stream workload.SpiffeWorkloadAPI_FetchX509BundlesServer) error {
	return s.follow(stream.Context(), onBundleChange(func(snap snapshot) error {
		bundles := map[string][]byte{snap.bundle.TrustDomain().IDString(): rawCerts(snap.bundle.X509Authorities())}
		for _, b := range snap.federated {
			if len(b.X509Authorities()) > 0 {
				bundles[b.TrustDomain().IDString()] = rawCerts(b.X509Authorities())
			}
		}
		return stream.Send(&workload.X509BundlesResponse{Bundles: bundles})
	}))
}

// FetchJWTBundles streams the JWT keys of the bundle (JWKS).
func (s *Server) FetchJWTBundles(_ *workload.JWTBundlesRequest, stream workload.SpiffeWorkloadAPI_FetchJWTBundlesServer) error {
	return s.follow(stream.Context(), onBundleChange(func(snap snapshot) error {
		bundles := map[string][]byte{}
		for _, b := range append([]*spiffebundle.Bundle{snap.bundle}, snap.federated...) {
			jwks, err := b.JWTBundle().Marshal()
			if err != nil {
				return status.Error(codes.Internal, err.Error())
			}
			bundles[b.TrustDomain().IDString()] = jwks
		}
		return stream.Send(&workload.JWTBundlesResponse{Bundles: bundles})
	}))
}

// FetchJWTSVID returns a JWT-SVID for the caller's identity and the
// audiences asked for.
func (s *Server) FetchJWTSVID(ctx context.Context, req *workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error) {
	w, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	if len(req.Audience) == 0 || len(req.Audience) > maxAudiences {
		return nil, status.Errorf(codes.InvalidArgument, "1 to %d audiences are required, not %d", maxAudiences, len(req.Audience))
	}
	for _, a := range req.Audience {
		if a == "" || len(a) > 1024 {
			return nil, status.Error(codes.InvalidArgument, "an audience is empty or longer than 1024 bytes")
		}
	}
	snap := s.m.snapshot(w.Container)
	if snap.svid == nil {
		why := "not issued yet"
		if snap.refusal != nil {
			why = snap.refusal.Error()
		}
		return nil, errNoIdentity(why)
	}
	if req.SpiffeId != "" && req.SpiffeId != snap.svid.ID.String() {
		return nil, status.Errorf(codes.PermissionDenied, "the caller is not entitled to %q", req.SpiffeId)
	}
	tok, err := s.m.jwt(ctx, w.Container, req.Audience)
	var ref *identity.Refusal
	if errors.As(err, &ref) {
		return nil, errNoIdentity(ref.Error())
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "asking the server for a JWT-SVID: %v", err)
	}
	return &workload.JWTSVIDResponse{Svids: []*workload.JWTSVID{{SpiffeId: snap.svid.ID.String(), Svid: tok}}}, nil
}

// ValidateJWTSVID checks a JWT-SVID against the trust bundle for the
// audience given. Any caller may validate (it releases nothing secret);
// the header is still required.
func (s *Server) ValidateJWTSVID(ctx context.Context, req *workload.ValidateJWTSVIDRequest) (*workload.ValidateJWTSVIDResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("workload.spiffe.io"); len(v) != 1 || v[0] != "true" {
		return nil, status.Error(codes.InvalidArgument, "security header missing from request")
	}
	if req.Audience == "" {
		return nil, status.Error(codes.InvalidArgument, "audience must be specified")
	}
	if req.Svid == "" {
		return nil, status.Error(codes.InvalidArgument, "svid must be specified")
	}
	s.m.mu.Lock()
	b, fed := s.m.bundle, s.m.federated
	s.m.mu.Unlock()
	if b == nil {
		return nil, status.Error(codes.Unavailable, "no trust bundle yet")
	}
	set := jwtbundle.NewSet(b.JWTBundle())
	for _, f := range fed {
		set.Add(f.JWTBundle())
	}
	svid, err := identity.ValidateJWT(req.Svid, set, req.Audience)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	claims, err := structpb.NewStruct(svid.Claims)
	if err != nil {
		claims = &structpb.Struct{}
	}
	return &workload.ValidateJWTSVIDResponse{SpiffeId: svid.ID.String(), Claims: claims}, nil
}

var _ workload.SpiffeWorkloadAPIServer = (*Server)(nil)
