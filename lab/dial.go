package lab

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// DialTCP connects from source address src (one of Client.Sources4/6; port chosen by the
// kernel) inside the client namespace to dst. The connection stays in the client
// namespace; the caller closes it.
func (l *Lab) DialTCP(ctx context.Context, src netip.Addr, dst netip.AddrPort) (*net.TCPConn, error) {
	c, err := dialIn(ctx, l.Client.NS, "tcp", netip.AddrPortFrom(src, 0), dst)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// DialUDP returns a UDP socket in the client namespace bound to src (port chosen by the
// kernel) and connected to dst. A connected socket only receives datagrams from dst: a
// reply from another source address is dropped by the kernel (use ListenUDP to see it).
func (l *Lab) DialUDP(src netip.Addr, dst netip.AddrPort) (*net.UDPConn, error) {
	c, err := dialIn(context.Background(), l.Client.NS, "udp", netip.AddrPortFrom(src, 0), dst)
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}

// ListenUDP returns an unconnected UDP socket bound to local inside the client namespace
// (port 0: chosen by the kernel). ReadFrom on it shows the source of every reply.
func (l *Lab) ListenUDP(local netip.AddrPort) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := Do(l.Client.NS, func() error {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(local))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen udp %s in %s: %w", local, l.Client.NS, err)
	}
	return c, nil
}

// HTTPClient returns an HTTP client whose connections leave the client namespace from
// source address src. It accepts any TLS certificate (the simulated servers' are
// self-signed), opens a new connection per request (no keep-alive, so every request is a
// new flow for the load balancer) and gives up after 10 seconds.
func (l *Lab) HTTPClient(src netip.Addr) *http.Client {
	return httpClient(l.Client.NS, src)
}

// httpClient is HTTPClient's client for namespace ns ("": the caller's).
func httpClient(ns string, src netip.Addr) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dst, err := netip.ParseAddrPort(addr)
				if err != nil {
					return nil, fmt.Errorf("dial %s: want IP:port in the lab: %w", addr, err)
				}
				return dialIn(ctx, ns, network, netip.AddrPortFrom(src, 0), dst)
			},
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // lab servers have self-signed certificates
			DisableKeepAlives: true,
			ForceAttemptHTTP2: false,
		},
	}
}

// dialIn dials from local to remote with the socket created inside namespace ns ("":
// the caller's own).
func dialIn(ctx context.Context, ns, network string, local, remote netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	in := Do
	if ns == "" {
		in = func(_ string, fn func() error) error { return fn() }
	}
	err := in(ns, func() error {
		d := net.Dialer{}
		switch network {
		case "tcp", "tcp4", "tcp6":
			d.LocalAddr = net.TCPAddrFromAddrPort(local)
		case "udp", "udp4", "udp6":
			d.LocalAddr = net.UDPAddrFromAddrPort(local)
		default:
			return fmt.Errorf("unsupported network %q", network)
		}
		var err error
		c, err = d.DialContext(ctx, network, remote.String())
		return err
	})
	if err != nil {
		if ns == "" {
			return nil, fmt.Errorf("dial %s %s from %s: %w", network, remote, local.Addr(), err)
		}
		return nil, fmt.Errorf("dial %s %s from %s in %s: %w", network, remote, local.Addr(), ns, err)
	}
	return c, nil
}
