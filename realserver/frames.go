package realserver

import (
	"encoding/binary"
	"github.com/medialb/medialb/internal/checksum"
	"net/netip"
)

// Ethernet types and IP protocols the checks send and read.
const (
	etherIPv4  = 0x0800
	etherARP   = 0x0806
	etherIPv6  = 0x86dd
	protoTCP   = 6
	protoICMP  = 1
	protoICMP6 = 58
)

var broadcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ethernet returns a frame of the given type from src to dst with room for
// n bytes of payload, and the payload.
func ethernet(dst, src [6]byte, typ uint16, n int) (frame, payload []byte) {
	f := make([]byte, 14+n)
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:], typ)
	return f, f[14:]
}

// arpRequest asks, by broadcast, who has target; sender is this node's
// address on the interface (the unspecified address makes it an ARP probe,
// which hosts answer too).
func arpRequest(mac [6]byte, sender, target netip.Addr) []byte {
	f, a := ethernet(broadcast, mac, etherARP, 28)
	binary.BigEndian.PutUint16(a[0:], 1)
	binary.BigEndian.PutUint16(a[2:], etherIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], 1)
	copy(a[8:14], mac[:])
	var s [4]byte
	if sender.Is4() {
		s = sender.As4()
	}
	t := target.As4()
	copy(a[14:18], s[:])
	copy(a[24:28], t[:])
	return f
}

// solicitedNode is target's solicited-node multicast address and its MAC.
func solicitedNode(target netip.Addr) (netip.Addr, [6]byte) {
	t := target.As16()
	g := [16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]}
	return netip.AddrFrom16(g), [6]byte{0x33, 0x33, 0xff, t[13], t[14], t[15]}
}

// neighborSolicitation asks who has target (IPv6), from sender with this
// node's MAC in the source link-layer address option.
func neighborSolicitation(mac [6]byte, sender, target netip.Addr) []byte {
	group, gmac := solicitedNode(target)
	icmp := make([]byte, 32)
	icmp[0] = 135
	t := target.As16()
	copy(icmp[8:24], t[:])
	icmp[24], icmp[25] = 1, 1 // source link-layer address, 8 bytes
	copy(icmp[26:32], mac[:])
	return ipv6Frame(gmac, mac, sender, group, protoICMP6, 255, icmp)
}

// ipv4Frame wraps an IPv4 payload of protocol proto, computing the header
// checksum and, for TCP, the TCP checksum (ICMP's is the caller's).
func ipv4Frame(dst, src [6]byte, from, to netip.Addr, proto byte, payload []byte) []byte {
	f, p := ethernet(dst, src, etherIPv4, 20+len(payload))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(20+len(payload)))
	p[6] = 0x40 // don't fragment
	p[8], p[9] = 64, proto
	a, b := from.As4(), to.As4()
	copy(p[12:16], a[:])
	copy(p[16:20], b[:])
	binary.BigEndian.PutUint16(p[10:], ^checksum.Fold(checksum.Sum(p[:20], 0)))
	copy(p[20:], payload)
	if proto == protoTCP {
		ps := checksum.Pseudo(a[:], b[:], uint32(len(payload)), proto)
		binary.BigEndian.PutUint16(p[20+16:], ^checksum.Fold(checksum.Sum(p[20:], ps)))
	}
	return f
}

// ipv6Frame wraps an IPv6 payload, computing the TCP or ICMPv6 checksum.
func ipv6Frame(dst, src [6]byte, from, to netip.Addr, proto byte, hops byte, payload []byte) []byte {
	f, p := ethernet(dst, src, etherIPv6, 40+len(payload))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(payload)))
	p[6], p[7] = proto, hops
	a, b := from.As16(), to.As16()
	copy(p[8:24], a[:])
	copy(p[24:40], b[:])
	copy(p[40:], payload)
	off := 16 // TCP
	if proto == protoICMP6 {
		off = 2
	}
	ps := checksum.Pseudo(a[:], b[:], uint32(len(payload)), proto)
	binary.BigEndian.PutUint16(p[40+off:], ^checksum.Fold(checksum.Sum(p[40:], ps)))
	return f
}

// tcpSYN is a TCP SYN from port sport to dport, as a client's first packet.
func tcpSYN(sport, dport uint16, seq uint32) []byte {
	t := make([]byte, 20)
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], seq)
	t[12] = 5 << 4
	t[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(t[14:], 64240)
	return t
}

// icmpEcho is an echo request (ICMP type 8, ICMPv6 type 128) with id and seq;
// the IPv4 checksum is filled in here, the ICMPv6 one by ipv6Frame.
func icmpEcho(v6 bool, id, seq uint16) []byte {
	e := make([]byte, 16)
	e[0] = 8
	if v6 {
		e[0] = 128
	}
	binary.BigEndian.PutUint16(e[4:], id)
	binary.BigEndian.PutUint16(e[6:], seq)
	copy(e[8:], "medialb!")
	if !v6 {
		binary.BigEndian.PutUint16(e[2:], ^checksum.Fold(checksum.Sum(e, 0)))
	}
	return e
}

// seen is what one received frame says: a host claims an address (ARP
// reply or gratuitous ARP, neighbour advertisement), or a probe was answered.
type seen struct {
	claim    bool
	addr     netip.Addr // claim: the address claimed
	mac      [6]byte    // claim: the claimant's MAC
	reply    bool
	from, to netip.Addr // reply: source and destination addresses
	id       uint16     // reply: TCP destination port or ICMP echo id
	sport    uint16     // reply: TCP source port (0 for ICMP)
}

// parse reads what a received frame says; ok is false for frames of no
// interest. It never panics on short or malformed frames.
func parse(f []byte) (s seen, ok bool) {
	if len(f) < 14 {
		return s, false
	}
	typ, p := binary.BigEndian.Uint16(f[12:]), f[14:]
	if typ == 0x8100 && len(f) >= 18 { // one VLAN tag
		typ, p = binary.BigEndian.Uint16(f[16:]), f[18:]
	}
	switch typ {
	case etherARP:
		if len(p) < 28 || binary.BigEndian.Uint16(p[2:]) != etherIPv4 || p[4] != 6 || p[5] != 4 {
			return s, false
		}
		op := binary.BigEndian.Uint16(p[6:])
		sender := netip.AddrFrom4([4]byte(p[14:18]))
		// A reply, or a gratuitous request (sender == target): a claim.
		if op == 2 || op == 1 && sender == netip.AddrFrom4([4]byte(p[24:28])) {
			s.claim, s.addr = true, sender
			copy(s.mac[:], p[8:14])
			return s, sender.IsValid() && !sender.IsUnspecified()
		}
	case etherIPv4:
		if len(p) < 20 || p[0]>>4 != 4 {
			return s, false
		}
		hl := int(p[0]&0x0f) * 4
		if hl < 20 || len(p) < hl+8 {
			return s, false
		}
		s.from, s.to = netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
		return l4Reply(s, p[9], p[hl:], false)
	case etherIPv6:
		if len(p) < 48 || p[0]>>4 != 6 {
			return s, false
		}
		s.from, s.to = netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))
		l4 := p[40:]
		if p[6] == protoICMP6 && len(l4) >= 24 && l4[0] == 136 { // neighbour advertisement
			s = seen{claim: true, addr: netip.AddrFrom16([16]byte(l4[8:24]))}
			copy(s.mac[:], f[6:12])
			for o := l4[24:]; len(o) >= 8 && o[1] > 0 && int(o[1])*8 <= len(o); o = o[int(o[1])*8:] {
				if o[0] == 2 { // target link-layer address
					copy(s.mac[:], o[2:8])
				}
			}
			return s, true
		}
		return l4Reply(s, p[6], l4, true)
	}
	return s, false
}

// l4Reply reads a TCP segment (SYN-ACK or RST) or an echo reply into s.
func l4Reply(s seen, proto byte, l4 []byte, v6 bool) (seen, bool) {
	switch {
	case proto == protoTCP && len(l4) >= 20:
		flags := l4[13]
		if flags&0x12 == 0x12 || flags&0x04 != 0 { // SYN-ACK or RST
			s.reply, s.sport, s.id = true, binary.BigEndian.Uint16(l4[0:]), binary.BigEndian.Uint16(l4[2:])
			return s, true
		}
	case !v6 && proto == protoICMP && len(l4) >= 8 && l4[0] == 0,
		v6 && proto == protoICMP6 && len(l4) >= 8 && l4[0] == 129:
		s.reply, s.id = true, binary.BigEndian.Uint16(l4[4:])
		return s, true
	}
	return s, false
}
