package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"
)

// RefusedAddressError is an outbound connection the egress policy
// refused: the address is loopback, private, link-local or otherwise not
// public, and the host is not one Config.AllowPrivate names.
type RefusedAddressError struct {
	Host string     // as asked for
	IP   netip.Addr // as resolved
}

func (e *RefusedAddressError) Error() string {
	return fmt.Sprintf("refusing to connect to %s (%s): not a public address; allow the host with --allow-private-host", e.Host, e.IP)
}

// cgnat is the shared address space (RFC 6598), private in practice.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// public reports whether ip may be reached without an allowance.
func public(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsValid() && ip.IsGlobalUnicast() && !ip.IsPrivate() && !ip.IsLoopback() &&
		!ip.IsLinkLocalUnicast() && !cgnat.Contains(ip)
}

// egress is the server's outbound policy for registries (scans,
// signatures, polls) and advisory downloads: connections go to public
// addresses only, checked on the address actually dialled (after DNS, so
// a name that resolves or later rebinds to 127.0.0.1 or 169.254.169.254
// is refused), unless the host is allowed: "host" or "host:port" as the
// caller names it, or "*" for every host.
type egress struct {
	allow []string
}

// allowed reports whether addr (host:port as dialled) may reach
// non-public addresses.
func (e *egress) allowed(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	return slices.ContainsFunc(e.allow, func(a string) bool {
		return a == "*" || strings.EqualFold(a, addr) || strings.EqualFold(a, host)
	})
}

// dialContext dials addr, refusing non-public addresses for hosts not
// allowed.
func (e *egress) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if !e.allowed(addr) {
		host, _, _ := net.SplitHostPort(addr)
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("checking the address %q: %w", address, err)
			}
			if !public(ap.Addr()) {
				return &RefusedAddressError{Host: host, IP: ap.Addr()}
			}
			return nil
		}
	}
	return d.DialContext(ctx, network, addr)
}

// transport is http.DefaultTransport's settings with the egress dialer.
func (e *egress) transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = e.dialContext
	return t
}

// refused reports whether err is (or wraps) an egress refusal.
func refused(err error) bool {
	var r *RefusedAddressError
	return errors.As(err, &r)
}
