package l7

import (
	"encoding/binary"
	"net/netip"
)

// PROXY protocol version 2 (haproxy.org/download/2.9/doc/proxy-protocol.txt).
var proxyV2Sig = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

const (
	proxyV2VerCmdProxy = 0x21 // version 2, command PROXY
	proxyV2TCP4        = 0x11 // AF_INET, STREAM
	proxyV2TCP6        = 0x21 // AF_INET6, STREAM
	proxyV2MaxLen      = 16 + 36
)

// appendProxyV2 appends the binary PROXY v2 header for a TCP connection from
// src to dst (the client and the VIP). When the families differ, both are
// sent as IPv6 (IPv4-mapped), which the specification allows.
func appendProxyV2(b []byte, src, dst netip.AddrPort) []byte {
	b = append(b, proxyV2Sig[:]...)
	b = append(b, proxyV2VerCmdProxy)
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	if s.Is4() && d.Is4() {
		b = append(b, proxyV2TCP4)
		b = binary.BigEndian.AppendUint16(b, 12)
		s4, d4 := s.As4(), d.As4()
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
	} else {
		b = append(b, proxyV2TCP6)
		b = binary.BigEndian.AppendUint16(b, 36)
		s16, d16 := s.As16(), d.As16()
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	return b
}
