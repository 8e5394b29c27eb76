package bgp

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// md5Supported reports whether this kernel signs TCP segments with MD5 (RFC
// 2385, CONFIG_TCP_MD5SIG), which a peer's password needs. GoBGP sets the key
// when it dials; without kernel support every attempt fails silently, so the
// speaker asks first and refuses to start.
func md5Supported() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("probe TCP MD5: %w", err)
	}
	defer l.Close()
	sc, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		return fmt.Errorf("probe TCP MD5: %w", err)
	}
	var serr error
	err = sc.Control(func(fd uintptr) {
		sig := &unix.TCPMD5Sig{Keylen: 1}
		sig.Addr.Family = unix.AF_INET
		copy(sig.Addr.Data[2:], []byte{127, 0, 0, 2})
		sig.Key[0] = 'x'
		serr = unix.SetsockoptTCPMD5Sig(int(fd), unix.IPPROTO_TCP, unix.TCP_MD5SIG, sig)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("this kernel cannot sign TCP segments with MD5 (setsockopt TCP_MD5SIG: %w; it needs CONFIG_TCP_MD5SIG)", err)
	}
	return nil
}
