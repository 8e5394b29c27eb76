package pipeline

// Test frames: a builder for valid frames of every kind the parser knows, and the
// named corpus (valid and malformed) that testdata/frames/*.hex is generated from.

import (
	"encoding/binary"
	"net/netip"
)

var (
	localMAC  = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x00, 0x01} // the load balancer
	clientMAC = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x00, 0xaa} // the router in front of it
	otherMAC  = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x00, 0xbb} // some other host

	vip4    = netip.MustParseAddr("192.168.94.110")
	vip6    = netip.MustParseAddr("fd00:94::110")
	client4 = netip.MustParseAddr("10.1.2.3")
	client6 = netip.MustParseAddr("fd00:1::2:3")
)

// v6ext is an IPv6 extension header to put in front of the L4 header.
type v6ext struct {
	typ  uint8 // 0, 43, 60 or 51 (AH); fragment headers come from frameSpec.frag
	size int   // total length in bytes: a multiple of 8 (AH: of 4), at least 8
}

// frameSpec describes a frame for buildFrame. The zero value of a field means the
// obvious default.
type frameSpec struct {
	dstMAC, srcMAC [6]byte
	vlans          []uint16 // TCIs, outermost first, all 802.1Q
	src, dst       netip.Addr
	proto          uint8 // 6 or 17 (or anything, with l4 raw bytes in payload)
	sport, dport   uint16
	payload        int     // L4 payload bytes
	ipOptions      int     // IPv4 option bytes (multiple of 4), NOPs ending in EOL
	ext            []v6ext // IPv6 extension headers before the L4 header
	frag           Frag    // FragFirst: offset 0, more fragments; FragLater: offset 185*8
	fragOffset     uint16  // for FragLater, in 8-byte units; 0 means 185
	pad            int     // Ethernet padding after the IP packet
	noL4           bool    // put payload right after the IP headers (non-TCP/UDP protos)
	raw            []byte  // with noL4: these bytes instead of payload's generated ones
}

func (s frameSpec) withDefaults() frameSpec {
	if s.dstMAC == ([6]byte{}) {
		s.dstMAC = localMAC
	}
	if s.srcMAC == ([6]byte{}) {
		s.srcMAC = clientMAC
	}
	if !s.src.IsValid() {
		if s.dst.Is6() {
			s.src = client6
		} else {
			s.src = client4
		}
	}
	if !s.dst.IsValid() {
		if s.src.Is6() {
			s.dst = vip6
		} else {
			s.dst = vip4
		}
	}
	if s.proto == 0 {
		s.proto = protoUDP
	}
	if s.sport == 0 {
		s.sport = 40000
	}
	if s.frag == FragLater && s.fragOffset == 0 {
		s.fragOffset = 185
	}
	return s
}

// l4Bytes returns the TCP or UDP header followed by payload bytes.
func (s frameSpec) l4Bytes() []byte {
	body := make([]byte, s.payload)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	if s.noL4 && s.raw != nil {
		return append([]byte{}, s.raw...)
	}
	if s.noL4 || s.frag == FragLater {
		return body
	}
	var h []byte
	switch s.proto {
	case protoTCP:
		h = make([]byte, 20)
		binary.BigEndian.PutUint32(h[4:], 0x01020304) // seq
		h[12] = 5 << 4
		h[13] = 0x18 // PSH ACK
		binary.BigEndian.PutUint16(h[14:], 65535)
	default:
		h = make([]byte, 8)
		binary.BigEndian.PutUint16(h[4:], uint16(8+len(body)))
	}
	binary.BigEndian.PutUint16(h[0:], s.sport)
	binary.BigEndian.PutUint16(h[2:], s.dport)
	return append(h, body...)
}

// buildFrame returns the frame s describes, with valid lengths and IPv4 checksum (L4
// checksums are left zero: the load balancer never looks at them).
func buildFrame(s frameSpec) []byte {
	s = s.withDefaults()
	f := append([]byte{}, s.dstMAC[:]...)
	f = append(f, s.srcMAC[:]...)
	for _, tci := range s.vlans {
		f = binary.BigEndian.AppendUint16(f, etherTypeVLAN)
		f = binary.BigEndian.AppendUint16(f, tci)
	}
	l4 := s.l4Bytes()
	if s.src.Is4() {
		f = binary.BigEndian.AppendUint16(f, etherTypeIPv4)
		ihl := 20 + s.ipOptions
		ip := make([]byte, ihl)
		ip[0] = 0x40 | byte(ihl/4)
		binary.BigEndian.PutUint16(ip[2:], uint16(ihl+len(l4)))
		binary.BigEndian.PutUint16(ip[4:], 0x1234)
		switch s.frag {
		case FragFirst:
			binary.BigEndian.PutUint16(ip[6:], 0x2000)
		case FragLater:
			binary.BigEndian.PutUint16(ip[6:], s.fragOffset&0x1fff)
		default:
			binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		}
		ip[8] = 64
		ip[9] = s.proto
		a, b := s.src.As4(), s.dst.As4()
		copy(ip[12:], a[:])
		copy(ip[16:], b[:])
		for i := 20; i < ihl; i++ {
			ip[i] = 1 // NOP
		}
		if s.ipOptions > 0 {
			ip[ihl-1] = 0 // EOL
		}
		binary.BigEndian.PutUint16(ip[10:], ipv4Checksum(ip))
		f = append(f, ip...)
	} else {
		f = binary.BigEndian.AppendUint16(f, etherTypeIPv6)
		var exts []byte
		types := []uint8{}
		for _, x := range s.ext {
			types = append(types, x.typ)
		}
		if s.frag != FragNone {
			types = append(types, protoFragment)
		}
		next := func(i int) uint8 {
			if i+1 < len(types) {
				return types[i+1]
			}
			return s.proto
		}
		for i, x := range s.ext {
			h := make([]byte, x.size)
			h[0] = next(i)
			if x.typ == protoAH {
				h[1] = byte(x.size/4 - 2)
			} else {
				h[1] = byte(x.size/8 - 1)
				h[2] = 1 // PadN option filling the rest
				h[3] = byte(x.size - 4)
			}
			exts = append(exts, h...)
		}
		if s.frag != FragNone {
			h := make([]byte, 8)
			h[0] = s.proto
			if s.frag == FragFirst {
				binary.BigEndian.PutUint16(h[2:], 1)
			} else {
				binary.BigEndian.PutUint16(h[2:], s.fragOffset<<3)
			}
			binary.BigEndian.PutUint32(h[4:], 0xcafe)
			exts = append(exts, h...)
		}
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(exts)+len(l4)))
		if len(types) > 0 {
			ip[6] = types[0]
		} else {
			ip[6] = s.proto
		}
		ip[7] = 64
		a, b := s.src.As16(), s.dst.As16()
		copy(ip[8:], a[:])
		copy(ip[24:], b[:])
		f = append(f, ip...)
		f = append(f, exts...)
	}
	f = append(f, l4...)
	return append(f, make([]byte, s.pad)...)
}

func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		if i == 10 {
			continue
		}
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// corpusFrame is one named test frame with what Parse must say about it.
type corpusFrame struct {
	name  string
	frame []byte
	want  Reason
}

// mutate returns a copy of frame with f applied.
func mutate(frame []byte, f func(b []byte) []byte) []byte {
	return f(append([]byte{}, frame...))
}

// l3 is the offset of the IP header in an untagged frame.
const l3 = ethHeaderLen

// corpus returns the named frames checked in under testdata/frames.
func corpus() []corpusFrame {
	udp4 := buildFrame(frameSpec{dport: 1935, payload: 18}) // 64 bytes on the wire without FCS
	tcp4 := buildFrame(frameSpec{proto: protoTCP, dport: 554, payload: 100})
	udp6 := buildFrame(frameSpec{src: client6, dport: 50000, payload: 100})
	tcp6 := buildFrame(frameSpec{src: client6, proto: protoTCP, dport: 1935, payload: 100})
	ext6 := buildFrame(frameSpec{src: client6, dport: 60000, payload: 32,
		ext: []v6ext{{protoHopByHop, 8}, {protoDestOpts, 16}, {protoRouting, 24}, {protoAH, 24}}})
	return []corpusFrame{
		// Valid frames.
		{"udp4-64B", udp4, OK},
		{"tcp4", tcp4, OK},
		{"udp6", udp6, OK},
		{"tcp6", tcp6, OK},
		{"udp4-vlan", buildFrame(frameSpec{vlans: []uint16{100}, dport: 1935, payload: 64}), OK},
		{"tcp6-qinq", buildFrame(frameSpec{vlans: []uint16{10, 200}, src: client6, proto: protoTCP, dport: 554}), OK},
		{"tcp4-options", buildFrame(frameSpec{proto: protoTCP, ipOptions: 40, dport: 554, payload: 10}), OK},
		{"udp4-padded", buildFrame(frameSpec{dport: 1935, payload: 2, pad: 16}), OK},
		{"udp6-ext", ext6, OK},
		{"udp4-frag-first", buildFrame(frameSpec{dport: 50000, payload: 1472, frag: FragFirst}), OK},
		{"udp4-frag-later", buildFrame(frameSpec{dport: 50000, payload: 600, frag: FragLater}), OK},
		{"udp6-frag-first", buildFrame(frameSpec{src: client6, dport: 50000, payload: 1400, frag: FragFirst}), OK},
		{"udp6-frag-later", buildFrame(frameSpec{src: client6, dport: 50000, payload: 600, frag: FragLater}), OK},
		{"tcp6-ext-frag-later", buildFrame(frameSpec{src: client6, proto: protoTCP, payload: 64, frag: FragLater,
			ext: []v6ext{{protoHopByHop, 8}}}), OK},
		{"udp6-atomic-frag", mutate(buildFrame(frameSpec{src: client6, dport: 554, payload: 20, frag: FragFirst}),
			func(b []byte) []byte { b[l3+40+3] = 0; return b }), OK}, // offset 0, M=0
		{"udp4-not-vip", buildFrame(frameSpec{dst: netip.MustParseAddr("192.168.94.1"), dport: 53, payload: 20}), OK},
		{"tcp4-not-vip-port", buildFrame(frameSpec{proto: protoTCP, dport: 22}), OK},

		// Not ours.
		{"arp", mutate(udp4, func(b []byte) []byte { b[12], b[13] = 0x08, 0x06; return b[:42] }), NotForUs},
		{"icmp4", buildFrame(frameSpec{proto: 1, noL4: true, payload: 40}), NotForUs},
		{"icmp6", buildFrame(frameSpec{src: client6, proto: 58, noL4: true, payload: 40}), NotForUs},
		{"vlan-3-tags", buildFrame(frameSpec{vlans: []uint16{1, 2, 3}, dport: 1935}), NotForUs},
		{"ipv6-no-next", buildFrame(frameSpec{src: client6, proto: 59, noL4: true}), NotForUs},
		{"ipv6-frag-later-icmp", buildFrame(frameSpec{src: client6, proto: 58, payload: 64, frag: FragLater}), NotForUs},

		// Malformed.
		{"short-ethernet", udp4[:13], MalformedEthernet},
		{"vlan-truncated", mutate(udp4, func(b []byte) []byte { b[12], b[13] = 0x81, 0x00; return b[:16] }), MalformedEthernet},
		{"vlan-ipv4-missing", buildFrame(frameSpec{vlans: []uint16{7}, dport: 1935})[:18], MalformedIPv4},
		{"ipv4-truncated", udp4[:l3+19], MalformedIPv4},
		{"ipv4-version-6", mutate(udp4, func(b []byte) []byte { b[l3] = 0x65; return b }), MalformedIPv4},
		{"ipv4-ihl-4", mutate(udp4, func(b []byte) []byte { b[l3] = 0x44; return b }), MalformedIPv4},
		{"ipv4-ihl-past-end", mutate(udp4, func(b []byte) []byte { b[l3] = 0x4f; return b }), MalformedIPv4},
		{"ipv4-total-too-long", mutate(udp4, func(b []byte) []byte { b[l3+3]++; return b }), MalformedIPv4},
		{"ipv4-total-below-ihl", mutate(udp4, func(b []byte) []byte { b[l3+2], b[l3+3] = 0, 19; return b }), MalformedIPv4},
		{"ipv4-total-cuts-udp", mutate(udp4, func(b []byte) []byte { b[l3+2], b[l3+3] = 0, 30; return b }), MalformedL4},
		{"ipv4-options-cut", buildFrame(frameSpec{proto: protoTCP, ipOptions: 40})[:l3+40], MalformedIPv4},
		{"udp4-truncated", mutate(udp4, func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[l3+2:], 20+7)
			return b[:l3+27]
		}), MalformedL4},
		{"udp4-length-lies", mutate(udp4, func(b []byte) []byte { b[l3+20+5] += 10; return b }), MalformedL4},
		{"udp4-length-below-8", mutate(udp4, func(b []byte) []byte { b[l3+20+4], b[l3+20+5] = 0, 7; return b }), MalformedL4},
		{"tcp4-truncated", mutate(tcp4, func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[l3+2:], 20+19)
			return b[:l3+39]
		}), MalformedL4},
		{"tcp4-doff-4", mutate(tcp4, func(b []byte) []byte { b[l3+20+12] = 4 << 4; return b }), MalformedL4},
		{"tcp4-doff-past-end", mutate(tcp4, func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[l3+2:], 20+40)
			b[l3+20+12] = 15 << 4
			return b[:l3+60]
		}), MalformedL4},
		{"udp4-frag-first-tiny", mutate(buildFrame(frameSpec{dport: 50000, payload: 100, frag: FragFirst}),
			func(b []byte) []byte { binary.BigEndian.PutUint16(b[l3+2:], 24); return b[:l3+24] }), MalformedL4},
		{"ipv6-truncated", udp6[:l3+39], MalformedIPv6},
		{"ipv6-version-4", mutate(udp6, func(b []byte) []byte { b[l3] = 0x40; return b }), MalformedIPv6},
		{"ipv6-payload-too-long", mutate(udp6, func(b []byte) []byte { b[l3+5]++; return b }), MalformedIPv6},
		{"ipv6-garbage", mutate(udp6, func(b []byte) []byte {
			for i := l3; i < len(b); i++ {
				b[i] = byte(i * 7)
			}
			return b
		}), MalformedIPv6},
		{"ipv6-ext-truncated", ext6[:l3+40+4], MalformedIPv6},
		{"ipv6-ext-length-past-end", mutate(ext6, func(b []byte) []byte { b[l3+40+8+16+1] = 200; return b }), MalformedIPv6},
		{"ipv6-two-frag-headers", mutate(buildFrame(frameSpec{src: client6, dport: 50000, payload: 40, frag: FragFirst,
			ext: []v6ext{{protoDestOpts, 8}}}), func(b []byte) []byte {
			b[l3+6] = protoFragment // a fragment header (offset 0, M) where dest-opts was
			b[l3+40+2], b[l3+40+3] = 0, 1
			return b
		}), MalformedIPv6},
		{"ipv6-ext-chain-too-long", buildFrame(frameSpec{src: client6, dport: 50000,
			ext: []v6ext{{60, 8}, {60, 8}, {60, 8}, {60, 8}, {60, 8}, {60, 8}, {60, 8}, {60, 8}, {60, 8}}}), MalformedIPv6},
		{"udp6-truncated", mutate(udp6, func(b []byte) []byte { b[l3+4], b[l3+5] = 0, 5; return b[:l3+45] }), MalformedL4},
		{"tcp6-payload-zero", mutate(tcp6, func(b []byte) []byte { b[l3+4], b[l3+5] = 0, 0; return b }), MalformedL4},
	}
}
