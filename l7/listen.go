package l7

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// noKeepAlive turns off the TCP keep-alive that the net package enables on
// every accepted and dialled connection by default (four setsockopt calls per
// socket, eight per relayed connection). A peer that vanishes without a FIN or
// reset is caught by the idle timeouts instead (ClientTimeout and
// ServerTimeout: the read deadline for a silent peer, the write deadline for
// one that stops reading), as in HAProxy, which sets no SO_KEEPALIVE unless
// told to (option clitcpka/srvtcpka).
const noKeepAlive = -1

var (
	errAddrNotAvail error = syscall.EADDRNOTAVAIL
	errAddrInUse    error = syscall.EADDRINUSE
	errAccess       error = syscall.EACCES
)

// listenFreebind listens on addr with IP_FREEBIND set (see freebind), so that
// binding succeeds before the VIP is configured on this node. Accepted
// connections get no TCP keep-alive (see noKeepAlive).
func listenFreebind(ctx context.Context, addr netip.AddrPort) (*net.TCPListener, error) {
	lc := net.ListenConfig{Control: freebind, KeepAlive: noKeepAlive}
	ln, err := lc.Listen(ctx, "tcp", addr.String())
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			err = errno
		}
		return nil, listenError(addr, err)
	}
	return ln.(*net.TCPListener), nil
}

// freebindError is returned by freebind when the option cannot be set.
func freebindError(err error) error {
	return fmt.Errorf("set IP_FREEBIND: %w", err)
}
