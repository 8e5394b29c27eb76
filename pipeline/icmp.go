package pipeline

import "net/netip"

// ICMPKind is the kind of an ICMP or ICMPv6 error that [ParseICMPError] decodes.
type ICMPKind uint8

// ICMP error kinds. These are the errors a router sends about a packet of a direct-routing
// flow (source: the VIP, destination: the client) back to its source, the VIP; the load
// balancer forwards them to the client's real server, which sent the packet. Other ICMP
// messages (echo requests to the VIP, redirects, router advertisements, ...) are the
// kernel's.
const (
	ICMPNone         ICMPKind = iota // not an ICMP error we forward
	ICMPUnreachable                  // IPv4 type 3 (but code 4), ICMPv6 type 1: destination unreachable
	ICMPFragNeeded                   // IPv4 type 3 code 4 (fragmentation needed), ICMPv6 type 2 (packet too big)
	ICMPTimeExceeded                 // IPv4 type 11, ICMPv6 type 3
	ICMPParamProblem                 // IPv4 type 12, ICMPv6 type 4
	numICMPKinds
)

// String returns "unreachable", "frag_needed", "time_exceeded", "param_problem" or "none".
func (k ICMPKind) String() string {
	switch k {
	case ICMPUnreachable:
		return "unreachable"
	case ICMPFragNeeded:
		return "frag_needed"
	case ICMPTimeExceeded:
		return "time_exceeded"
	case ICMPParamProblem:
		return "param_problem"
	}
	return "none"
}

const (
	icmpHdrLen = 8 // type, code, checksum and 4 bytes (unused, MTU, pointer)
	// quotedL4Len is what an ICMP error must quote of the L4 header: RFC 792 promises
	// 8 bytes, enough for the ports.
	quotedL4Len = 8
	// maxL4Off bounds the frame offset of the ICMP header and the quoted headers, as
	// bpf/parse.h's MAX_L4_OFF bounds what the XDP program reads: an ICMP header
	// beyond it is the kernel's, a quoted header beyond it malformed, for both.
	maxL4Off = 4096
)

// icmpKind maps an ICMP (v6: ICMPv6) type and code to the kind of error, or ICMPNone.
func icmpKind(v6 bool, typ, code uint8) ICMPKind {
	if v6 {
		switch typ {
		case 1:
			return ICMPUnreachable
		case 2:
			return ICMPFragNeeded
		case 3:
			return ICMPTimeExceeded
		case 4:
			return ICMPParamProblem
		}
		return ICMPNone
	}
	switch typ {
	case 3:
		if code == 4 {
			return ICMPFragNeeded
		}
		return ICMPUnreachable
	case 11:
		return ICMPTimeExceeded
	case 12:
		return ICMPParamProblem
	}
	return ICMPNone
}

// ParseICMPError goes on where [Parse] stopped with NotForUs for an ICMP (IPv4) or
// ICMPv6 (IPv6) packet that is not a non-first fragment. When the packet is an ICMP error
// ([ICMPKind]) quoting a TCP or UDP packet whose source is the error's destination (the
// VIP), it returns [OK] and sets p.ICMP and, from the quoted packet, p.Src (the VIP),
// p.Dst (the client), p.Proto, p.Frag and the ports (zero for a quoted non-first
// fragment). It returns [MalformedICMP] when the quoted IP or L4 header of an ICMP
// error is truncated or inconsistent (p.Dst is then still the error's destination), and
// NotForUs for anything else: not an ICMP error (an ICMP header shorter than 8 bytes
// included), an error about another source or protocol. The quoted packet may be cut short: its length fields are not checked.
//
// Like Parse it allocates nothing; it must agree with bpf/steer.c, which a differential
// test checks.
func ParseICMPError(frame []byte, p *Packet) Reason {
	v6 := p.Proto == protoICMPv6
	if (p.Proto != protoICMP && !v6) || p.Frag == FragLater || p.L4Off == 0 || p.L4Off > maxL4Off ||
		p.L4End > len(frame) || p.L4Off > p.L4End || v6 != p.Dst.Is6() {
		return NotForUs
	}
	b := frame[p.L4Off:p.L4End]
	if len(b) < icmpHdrLen {
		return NotForUs // not an ICMP error we know: the kernel's to judge
	}
	kind := icmpKind(v6, b[0], b[1])
	if kind == ICMPNone {
		return NotForUs
	}
	in := b[icmpHdrLen:]
	inOff := p.L4Off + icmpHdrLen
	var r Reason
	if v6 {
		r = parseQuotedIPv6(in, inOff, p)
	} else {
		r = parseQuotedIPv4(in, inOff, p)
	}
	if r == OK {
		p.ICMP = kind
	}
	return r
}

// parseQuotedIPv4 decodes the IPv4 packet quoted in an ICMP error (b, at frame offset
// off); p.Dst is the error's destination on entry.
func parseQuotedIPv4(b []byte, off int, p *Packet) Reason {
	if len(b) < ipv4MinLen || b[0]>>4 != 4 {
		return MalformedICMP
	}
	ihl := int(b[0]&0x0f) << 2
	if ihl < ipv4MinLen {
		return MalformedICMP
	}
	src := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	if src != p.Dst {
		return NotForUs
	}
	proto := b[9]
	if proto != protoTCP && proto != protoUDP {
		return NotForUs
	}
	dst := netip.AddrFrom4([4]byte{b[16], b[17], b[18], b[19]})
	if (uint16(b[6])<<8|uint16(b[7]))&0x1fff != 0 {
		return quoted(p, src, dst, proto, FragLater, 0, 0)
	}
	return quotedPorts(b, ihl, off, p, src, dst, proto)
}

// parseQuotedIPv6 decodes the IPv6 packet quoted in an ICMPv6 error (b, at frame offset
// off), walking at most [MaxIPv6ExtHeaders] extension headers; a longer chain is
// malformed.
func parseQuotedIPv6(b []byte, off int, p *Packet) Reason {
	if len(b) < ipv6HdrLen || b[0]>>4 != 6 {
		return MalformedICMP
	}
	src := netip.AddrFrom16([16]byte(b[8:24]))
	if src != p.Dst {
		return NotForUs
	}
	dst := netip.AddrFrom16([16]byte(b[24:40]))
	nh := b[6]
	at := ipv6HdrLen
	frag := FragNone
	for n := 0; isIPv6Ext(nh); n++ {
		if n == MaxIPv6ExtHeaders || off+at > maxL4Off || len(b) < at+8 {
			return MalformedICMP
		}
		h := b[at:]
		switch nh {
		case protoFragment:
			nh = h[0]
			at += 8
			if (uint16(h[2])<<8|uint16(h[3]))>>3 != 0 {
				frag = FragLater
			}
		case protoAH:
			nh = h[0]
			at += (int(h[1]) + 2) << 2
		default:
			nh = h[0]
			at += (int(h[1]) + 1) << 3
		}
		if frag == FragLater {
			break
		}
	}
	if nh != protoTCP && nh != protoUDP {
		if isIPv6Ext(nh) && frag != FragLater {
			return MalformedICMP
		}
		return NotForUs
	}
	if frag == FragLater {
		return quoted(p, src, dst, nh, FragLater, 0, 0)
	}
	return quotedPorts(b, at, off, p, src, dst, nh)
}

// quotedPorts reads the ports of the quoted L4 header at b[at:] (frame offset off+at)
// and fills p with the quoted packet.
func quotedPorts(b []byte, at, off int, p *Packet, src, dst netip.Addr, proto uint8) Reason {
	if off+at > maxL4Off || len(b) < at+quotedL4Len {
		return MalformedICMP
	}
	return quoted(p, src, dst, proto, FragNone, uint16(b[at])<<8|uint16(b[at+1]), uint16(b[at+2])<<8|uint16(b[at+3]))
}

// quoted fills p with the quoted packet and returns OK.
func quoted(p *Packet, src, dst netip.Addr, proto uint8, frag Frag, sport, dport uint16) Reason {
	p.Src, p.Dst, p.Proto, p.Frag, p.SrcPort, p.DstPort = src, dst, proto, frag, sport, dport
	return OK
}

// isIPv6Ext reports whether nh is an extension header that Parse walks.
func isIPv6Ext(nh uint8) bool {
	return nh == protoHopByHop || nh == protoRouting || nh == protoDestOpts ||
		nh == protoFragment || nh == protoAH
}
