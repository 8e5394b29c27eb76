package probe

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// Local is a Dialer in the calling process's own network namespace: the client of the
// VM lab (lab/vm) probes from its guest with it.
type Local struct{}

func (Local) dial(ctx context.Context, network string, src netip.Addr, dst netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{}
	if network == "udp" {
		d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	} else {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	c, err := d.DialContext(ctx, network, dst.String())
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from %s: %w", network, dst, src, err)
	}
	return c, nil
}

// DialTCP connects from src to dst.
func (l Local) DialTCP(ctx context.Context, src netip.Addr, dst netip.AddrPort) (*net.TCPConn, error) {
	c, err := l.dial(ctx, "tcp", src, dst)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// DialUDP returns a UDP socket bound to src and connected to dst.
func (l Local) DialUDP(src netip.Addr, dst netip.AddrPort) (*net.UDPConn, error) {
	c, err := l.dial(context.Background(), "udp", src, dst)
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}

// HTTPClient returns a client whose connections leave from src, one per request,
// accepting any certificate (the simulated servers' are self-signed).
func (l Local) HTTPClient(src netip.Addr) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dst, err := netip.ParseAddrPort(addr)
				if err != nil {
					return nil, fmt.Errorf("dial %s: want IP:port: %w", addr, err)
				}
				return l.dial(ctx, "tcp", src, dst)
			},
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // lab servers have self-signed certificates
			DisableKeepAlives: true,
		},
	}
}
