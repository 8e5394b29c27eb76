package l7

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

var (
	errAddrNotAvail error = syscall.EADDRNOTAVAIL
	errAddrInUse    error = syscall.EADDRINUSE
	errAccess       error = syscall.EACCES
)

// listenFreebind listens on addr with IP_FREEBIND set (see freebind), so that
// binding succeeds before the VIP is configured on this node.
func listenFreebind(ctx context.Context, addr netip.AddrPort) (*net.TCPListener, error) {
	lc := net.ListenConfig{Control: freebind}
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
