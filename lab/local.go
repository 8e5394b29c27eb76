package lab

import (
	"context"
	"net"
	"net/http"
	"net/netip"
)

// Local dials from the machine the program runs on, in its own network namespace, as
// Lab's dial methods do from the client namespace: for the lab on virtual machines,
// where the client is a VM (medialb-lab check). Its zero value is ready to use.
type Local struct{}

// DialTCP connects from src (port chosen by the kernel) to dst.
func (Local) DialTCP(ctx context.Context, src netip.Addr, dst netip.AddrPort) (*net.TCPConn, error) {
	c, err := dialIn(ctx, "", "tcp", netip.AddrPortFrom(src, 0), dst)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// DialUDP returns a UDP socket bound to src and connected to dst.
func (Local) DialUDP(src netip.Addr, dst netip.AddrPort) (*net.UDPConn, error) {
	c, err := dialIn(context.Background(), "", "udp", netip.AddrPortFrom(src, 0), dst)
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}

// HTTPClient returns a client like Lab.HTTPClient's, from src on this machine.
func (Local) HTTPClient(src netip.Addr) *http.Client { return httpClient("", src) }
