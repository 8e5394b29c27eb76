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

// Local is a Dialer for the machine the program runs on, in its own network namespace:
// the client VM of the Vagrant lab (medialb-lab check). Its zero value is ready to use.
type Local struct{}

// DialTCP connects from src (port chosen by the kernel) to dst.
func (Local) DialTCP(ctx context.Context, src netip.Addr, dst netip.AddrPort) (*net.TCPConn, error) {
	c, err := localDial(ctx, "tcp", src, dst)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// DialUDP returns a UDP socket bound to src and connected to dst.
func (Local) DialUDP(src netip.Addr, dst netip.AddrPort) (*net.UDPConn, error) {
	c, err := localDial(context.Background(), "udp", src, dst)
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}

// HTTPClient returns a client whose connections leave from src, as lab.Lab's does: any
// TLS certificate accepted (the simulated servers' are self-signed), a new connection
// per request, 10 seconds at most.
func (Local) HTTPClient(src netip.Addr) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dst, err := netip.ParseAddrPort(addr)
				if err != nil {
					return nil, fmt.Errorf("dial %s: want IP:port: %w", addr, err)
				}
				return localDial(ctx, network, src, dst)
			},
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // lab servers have self-signed certificates
			DisableKeepAlives: true,
		},
	}
}

func localDial(ctx context.Context, network string, src netip.Addr, dst netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{}
	switch network {
	case "tcp", "tcp4", "tcp6":
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	case "udp", "udp4", "udp6":
		d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	default:
		return nil, fmt.Errorf("dial %s: unsupported network", network)
	}
	c, err := d.DialContext(ctx, network, dst.String())
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from %s: %w", network, dst, src, err)
	}
	return c, nil
}
