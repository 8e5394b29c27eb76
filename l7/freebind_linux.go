package l7

import "syscall"

// freebind sets IP_FREEBIND on a listening socket before bind, the per-socket
// form of net.ipv4.ip_nonlocal_bind: a backup HA node binds the VIP's ports
// before it holds the address, and a VIP brought up later is served at once.
// Linux honours the SOL_IP option on IPv6 sockets too.
//
// golang.org/x/sys/unix is reserved for the afxdp package; this uses the
// standard library's syscall constants and RawConn instead, which is all a
// socket option needs.
func freebind(network, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_IP, syscall.IP_FREEBIND, 1)
	}); err != nil {
		return freebindError(err)
	}
	if serr != nil {
		return freebindError(serr)
	}
	return nil
}
