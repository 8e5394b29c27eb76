package pipeline

import (
	"net/netip"
)

// Ethernet types and IP protocol numbers the parser understands.
const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100 // 802.1Q
	etherTypeQinQ = 0x88a8 // 802.1ad service tag

	protoHopByHop = 0
	protoICMP     = 1
	protoTCP      = 6
	protoUDP      = 17
	protoRouting  = 43
	protoFragment = 44
	protoAH       = 51
	protoICMPv6   = 58
	protoDestOpts = 60

	ethHeaderLen = 14
	vlanTagLen   = 4
	ipv4MinLen   = 20
	ipv6HdrLen   = 40
	tcpMinLen    = 20
	udpHdrLen    = 8
)

// MaxVLANTags is the number of stacked 802.1Q/802.1ad tags Parse accepts; a frame with
// more tags is not for us ([NotForUs]).
const MaxVLANTags = 2

// MaxIPv6ExtHeaders is the number of IPv6 extension headers (hop-by-hop, routing,
// destination options, fragment, authentication) Parse walks; a longer chain is
// [MalformedIPv6].
const MaxIPv6ExtHeaders = 8

// Frag is the position of a packet within a fragmented IP datagram.
type Frag uint8

// Fragment positions.
const (
	FragNone  Frag = iota // not fragmented (an IPv6 atomic fragment counts as not fragmented)
	FragFirst             // first fragment: carries the L4 header
	FragLater             // non-first fragment: no L4 header, ports are zero
)

// String returns "none", "first" or "later".
func (f Frag) String() string {
	switch f {
	case FragNone:
		return "none"
	case FragFirst:
		return "first"
	case FragLater:
		return "later"
	}
	return "invalid"
}

// Packet is what [Parse] extracts from a frame. Its zero value is an empty result; reuse
// one Packet for many frames (Parse overwrites every field it reports).
type Packet struct {
	Src, Dst netip.Addr // IP source and destination
	Proto    uint8      // L4 protocol: 6 (TCP) or 17 (UDP) when Parse reports [OK]
	Frag     Frag       // fragment position
	VLANs    uint8      // number of VLAN tags skipped
	SrcPort  uint16     // L4 ports; zero for a non-first fragment
	DstPort  uint16
	L3Off    int // offset of the IP header in the frame
	L4Off    int // offset of the TCP/UDP header; zero for a non-first fragment
	// L4End is the end of the IP payload in the frame (the IP length fields, not the
	// frame's length, which may carry Ethernet padding).
	L4End int
	// ICMP is the kind of ICMP error for a packet [ParseICMPError] decoded; Src, Dst,
	// Proto, Frag and the ports then describe the packet the error quotes.
	ICMP ICMPKind
}

// OK is what [Parse] returns for a well-formed TCP or UDP packet (or a non-first
// fragment of one); it is the same value as [Forwarded].
const OK = Forwarded

// Parse decodes an Ethernet frame: up to [MaxVLANTags] VLAN tags, IPv4 (with options) or
// IPv6 (with hop-by-hop, routing, destination-options, fragment and authentication (AH)
// extension headers, as the XDP steering program walks them), and
// the TCP or UDP header. It returns [OK] when p describes a TCP or UDP packet that may be
// forwarded, a Malformed reason ([MalformedEthernet], [MalformedIPv4], [MalformedIPv6],
// [MalformedL4]) when a header is truncated or inconsistent, or [NotForUs] for anything
// else (not IP, not TCP/UDP, too many VLAN tags). The fields of p are only meaningful
// when the result is OK, with one exception: for an IP packet that is not TCP or UDP
// (NotForUs), Src, Dst, Proto, Frag, L3Off and (but for a non-first fragment) L4Off and
// L4End are set, so that [ParseICMPError] can go on with an ICMP packet.
//
// Parse reads frame only, allocates nothing and is safe for concurrent use. Lengths are
// checked against the IP header's length fields: an IP length larger than the frame is
// malformed, a smaller one is allowed (Ethernet padding). For a first fragment the UDP
// length, which covers the whole datagram, is only checked to be at least 8.
//
// The function is written by hand, with reslicing before fixed-offset reads, so that the
// compiler can drop most bounds checks; slow_test.go holds an obvious reference that the
// fuzz target compares it with.
func Parse(frame []byte, p *Packet) Reason {
	if len(frame) < ethHeaderLen {
		return MalformedEthernet
	}
	et := uint16(frame[12])<<8 | uint16(frame[13])
	b := frame[ethHeaderLen:]
	p.VLANs = 0
	for et == etherTypeVLAN || et == etherTypeQinQ {
		if p.VLANs == MaxVLANTags {
			return NotForUs
		}
		if len(b) < vlanTagLen {
			return MalformedEthernet
		}
		et = uint16(b[2])<<8 | uint16(b[3])
		b = b[vlanTagLen:]
		p.VLANs++
	}
	off := len(frame) - len(b)
	p.L3Off = off
	switch et {
	case etherTypeIPv4:
		return parseIPv4(b, off, p)
	case etherTypeIPv6:
		return parseIPv6(b, off, p)
	}
	return NotForUs
}

// parseIPv4 parses the IPv4 packet b, found at offset base of the frame.
func parseIPv4(b []byte, base int, p *Packet) Reason {
	if len(b) < ipv4MinLen {
		return MalformedIPv4
	}
	vihl := b[0]
	if vihl>>4 != 4 {
		return MalformedIPv4
	}
	ihl := int(vihl&0x0f) << 2
	if ihl < ipv4MinLen {
		return MalformedIPv4
	}
	total := int(b[2])<<8 | int(b[3])
	if total < ihl || total > len(b) {
		return MalformedIPv4
	}
	fragField := uint16(b[6])<<8 | uint16(b[7])
	p.Proto = b[9]
	p.Src = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	p.Dst = netip.AddrFrom4([4]byte{b[16], b[17], b[18], b[19]})
	p.ICMP = ICMPNone
	if fragField&0x1fff != 0 {
		p.Frag = FragLater
		p.SrcPort, p.DstPort, p.L4Off, p.L4End = 0, 0, 0, 0
		if p.Proto != protoTCP && p.Proto != protoUDP {
			return NotForUs
		}
		return OK
	}
	p.Frag = FragNone
	if fragField&0x2000 != 0 {
		p.Frag = FragFirst
	}
	p.L4Off, p.L4End = base+ihl, base+total
	if p.Proto != protoTCP && p.Proto != protoUDP {
		return NotForUs
	}
	return parseL4(b[ihl:total], p)
}

// parseIPv6 parses the IPv6 packet b, found at offset base of the frame.
func parseIPv6(b []byte, base int, p *Packet) Reason {
	if len(b) < ipv6HdrLen {
		return MalformedIPv6
	}
	if b[0]>>4 != 6 {
		return MalformedIPv6
	}
	end := ipv6HdrLen + (int(b[4])<<8 | int(b[5]))
	if end > len(b) {
		return MalformedIPv6
	}
	b = b[:end]
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	nh := b[6]
	rest := b[ipv6HdrLen:]
	p.Frag = FragNone
	p.ICMP = ICMPNone
	p.L4End = base + end
	sawFrag := false
	for n := 0; ; n++ {
		if nh != protoHopByHop && nh != protoRouting && nh != protoDestOpts &&
			nh != protoFragment && nh != protoAH {
			break
		}
		if n == MaxIPv6ExtHeaders {
			return MalformedIPv6
		}
		if len(rest) < 8 {
			return MalformedIPv6
		}
		if nh == protoFragment {
			if sawFrag {
				return MalformedIPv6
			}
			sawFrag = true
			fo := uint16(rest[2])<<8 | uint16(rest[3])
			nh = rest[0]
			rest = rest[8:]
			if fo>>3 != 0 {
				p.Proto = nh
				p.Frag = FragLater
				p.SrcPort, p.DstPort, p.L4Off, p.L4End = 0, 0, 0, 0
				if nh != protoTCP && nh != protoUDP {
					return NotForUs
				}
				return OK
			}
			if fo&1 != 0 {
				p.Frag = FragFirst
			}
			continue
		}
		var hlen uint
		if nh == protoAH {
			hlen = (uint(rest[1]) + 2) << 2
		} else {
			hlen = (uint(rest[1]) + 1) << 3
		}
		if hlen > uint(len(rest)) {
			return MalformedIPv6
		}
		nh = rest[0]
		rest = rest[hlen:]
	}
	p.Proto = nh
	p.L4Off = base + len(b) - len(rest)
	if nh != protoTCP && nh != protoUDP {
		return NotForUs
	}
	return parseL4(rest, p)
}

// parseL4 checks the TCP or UDP header at the start of b (the rest of the IP payload)
// and reads the ports.
func parseL4(b []byte, p *Packet) Reason {
	if len(b) < udpHdrLen { // also shorter than any TCP header
		return MalformedL4
	}
	if p.Proto == protoTCP {
		if len(b) < tcpMinLen {
			return MalformedL4
		}
		doff := int(b[12]>>4) << 2
		if doff < tcpMinLen || doff > len(b) {
			return MalformedL4
		}
	} else {
		ulen := int(b[4])<<8 | int(b[5])
		if ulen < udpHdrLen || (p.Frag == FragNone && ulen > len(b)) {
			return MalformedL4
		}
	}
	p.SrcPort = uint16(b[0])<<8 | uint16(b[1])
	p.DstPort = uint16(b[2])<<8 | uint16(b[3])
	return OK
}
