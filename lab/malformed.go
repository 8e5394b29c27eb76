package lab

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
)

// MalformedFrames builds n broken frames addressed to the load balancer's MAC and the
// VIP: truncated headers, IHL < 5 or past the end, lying total lengths, truncated
// TCP/UDP, garbage IPv6 and extension headers, broken VLAN tags, random bytes. None
// of them is a frame the dataplane may forward. The e2e tests and lab/vm send them.
func MalformedFrames(src, dst net.HardwareAddr, c4, vip4, c6, vip6 netip.Addr, n int) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	eth := func(typ uint16, payload []byte) []byte {
		f := make([]byte, 14, 14+len(payload))
		copy(f, dst)
		copy(f[6:], src)
		binary.BigEndian.PutUint16(f[12:], typ)
		return append(f, payload...)
	}
	ip4 := func(ihl byte, total uint16, proto byte, l4 []byte, extra int) []byte {
		h := make([]byte, 20+extra)
		h[0] = 0x40 | ihl
		binary.BigEndian.PutUint16(h[2:], total)
		h[8], h[9] = 64, proto
		s, d := c4.As4(), vip4.As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		return append(h, l4...)
	}
	l4 := func(n int) []byte {
		b := make([]byte, n)
		binary.BigEndian.PutUint16(b[0:], 40000)
		if n >= 4 {
			binary.BigEndian.PutUint16(b[2:], 1935)
		}
		return b
	}
	ip6 := func(next byte, plen uint16, rest []byte) []byte {
		h := make([]byte, 40)
		h[0] = 0x60
		binary.BigEndian.PutUint16(h[4:], plen)
		h[6], h[7] = next, 64
		s, d := c6.As16(), vip6.As16()
		copy(h[8:], s[:])
		copy(h[24:], d[:])
		return append(h, rest...)
	}
	kinds := []func() []byte{
		func() []byte { return eth(0x0800, nil) },                                      // Ethernet only, no IPv4 header
		func() []byte { return eth(0x0800, ip4(5, 40, 17, nil, 0)[:10+rng.IntN(9)]) },  // truncated IPv4 header
		func() []byte { return eth(0x0800, ip4(byte(rng.IntN(5)), 28, 17, l4(8), 0)) }, // IHL < 5
		func() []byte { return eth(0x0800, ip4(15, 60, 17, l4(8), 0)) },                // IHL past the end
		func() []byte { return eth(0x0800, ip4(5, 1400, 17, l4(8), 0)) },               // total length lies
		func() []byte { return eth(0x0800, ip4(5, 30, 6, l4(10), 0)) },                 // truncated TCP
		func() []byte { return eth(0x0800, ip4(5, 24, 17, l4(4), 0)) },                 // truncated UDP
		func() []byte { return eth(0x86dd, ip6(17, 8, nil)[:20+rng.IntN(20)]) },        // truncated IPv6 header
		func() []byte { return eth(0x86dd, ip6(0, 200, []byte{17, 40, 0, 0})) },        // ext header past the end
		func() []byte { return eth(0x86dd, ip6(17, 4, l4(4))) },                        // truncated UDP in IPv6
		func() []byte { return eth(0x8100, []byte{0, 10, 0x08}) },                      // broken VLAN tag
		func() []byte { // random bytes behind an IPv4 header start aimed at the VIP
			b := make([]byte, 20+rng.IntN(60))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			b[0] = 0x40 | byte(rng.IntN(5)) // version 4, IHL < 5: never valid
			return eth(0x0800, b)
		},
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = kinds[i%len(kinds)]()
	}
	return out
}
