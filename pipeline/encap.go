package pipeline

import (
	"encoding/binary"
	"github.com/medialb/medialb/internal/checksum"

	"github.com/medialb/medialb/tables"
)

// Tunnelled real servers (forwarding: tunnel). The client's IP packet, untouched, gets
// an outer IP header (and for GUE a UDP header) in front of it, from the server's
// TunnelSrc (our address on the route to it) to the server; the Ethernet header stays in
// front with the next hop's MAC (process wrote it) and the outer family's EtherType. The
// frame grows at its front into the UMEM chunk's headroom ([Headroom]).
//
// MTU: when the outer packet would exceed the worker's MTU ([WorkerOptions.MTU]), an
// IPv4 packet with DF set or any IPv6 packet is answered, in place, with an ICMP
// "fragmentation needed" / "packet too big" to the client from the VIP, carrying the
// MTU left for the inner packet: the client's PMTU discovery then sends smaller
// segments. An IPv4 packet without DF, and ICMP errors being routed, are dropped
// ([TunnelTooBig]).

// Headroom is implemented by a [Port] whose frames have room in front of them
// (*[afxdp.Socket]: the kernel leaves XDP_PACKET_HEADROOM in every chunk).
type Headroom interface {
	// Grow returns d extended by n bytes at its front, within the same UMEM frame,
	// and the grown frame's bytes; ok is false when the frame has less room.
	Grow(d Desc, n int) (Desc, []byte, bool)
}

const (
	ipv4HdrLen     = 20
	protoIPIP      = 4  // IPv4 in IP
	protoIPv6Encap = 41 // IPv6 in IP
	outerTTL       = 64
	// tooBigQuoteV4 and tooBigQuoteV6 bound the quoted packet of an ICMP error so
	// that the error stays within 576 (IPv4) and 1280 (IPv6) bytes.
	tooBigQuoteV4 = 576 - ipv4HdrLen - icmpHdrLen
	tooBigQuoteV6 = 1280 - ipv6HdrLen - icmpHdrLen
	// minIPv6MTU is the smallest MTU an IPv6 packet-too-big may announce.
	minIPv6MTU = 1280
)

// DefaultMTU is the MTU a [Worker] assumes when [WorkerOptions.MTU] is 0.
const DefaultMTU = 1500

// TunnelCounts counts what a worker did for tunnelled real servers.
type TunnelCounts struct {
	Encapsulated uint64 // frames encapsulated and transmitted
	TooBigSent   uint64 // ICMP too-big errors sent back to clients
}

// fastPathTunnel reports whether the steering program can forward a decision's
// frames itself: direct routing always; a tunnelled server only with a counter slot,
// which keys its encapsulation in the program's tunnel map.
func fastPathTunnel(d *decision) bool {
	return d.srv.Encap == tables.EncapNone || d.srv.Slot != 0
}

// tunnelVerdict is what encapsulate did with a frame.
type tunnelVerdict uint8

const (
	tunnelSent   tunnelVerdict = iota // encapsulated: transmit to the server
	tunnelTooBig                      // answered with an ICMP too-big: transmit to the client
	tunnelDrop                        // dropped (the returned reason says why)
)

// encapsulate wraps the frame d, which process forwarded to a tunnelled server (dec),
// and returns the frame to transmit. origSrc is the frame's source MAC on arrival
// (process replaced it), where an ICMP too-big goes. It allocates nothing.
func (w *Worker) encapsulate(d Desc, dec *decision, origSrc [6]byte) (Desc, tunnelVerdict, Reason) {
	frame := w.port.Frame(d)
	l3 := dec.l3off
	innerLen, inner6, ok := ipLength(frame, l3)
	if !ok {
		return d, tunnelDrop, MalformedIPv4 // not reached: process parsed it
	}
	srv := dec.srv
	outer6 := srv.Addr.Is6()
	hl := ipv4HdrLen
	if outer6 {
		hl = ipv6HdrLen
	}
	if srv.Encap == tables.EncapGUE {
		hl += udpHdrLen
	}
	if hl+innerLen > w.mtu {
		if dec.icmp != ICMPNone || (!inner6 && frame[l3+6]&0x40 == 0) {
			return d, tunnelDrop, TunnelTooBig
		}
		n := tooBig(frame, l3, innerLen, inner6, w.mtu-hl, origSrc, w.localMAC)
		if n == 0 {
			return d, tunnelDrop, TunnelTooBig
		}
		d.Len = uint32(n)
		return d, tunnelTooBig, Forwarded
	}
	if w.grow == nil {
		return d, tunnelDrop, TunnelNoRoom
	}
	nd, buf, ok := w.grow.Grow(d, hl)
	if !ok {
		return d, tunnelDrop, TunnelNoRoom
	}
	// The Ethernet header (with its VLAN tags) moves to the new front; the inner
	// packet stays where it is. Ethernet padding after the IP packet is cut.
	copy(buf[:l3], buf[hl:hl+l3])
	et := uint16(etherTypeIPv4)
	if outer6 {
		et = etherTypeIPv6
	}
	binary.BigEndian.PutUint16(buf[l3-2:l3], et)
	hash := flowHash(dec.src.As16(), dec.sport, dec.dport)
	writeOuter(buf[l3:l3+hl+innerLen], hl, inner6, srv, hash)
	nd.Len = uint32(l3 + hl + innerLen)
	return nd, tunnelSent, Forwarded
}

// ipLength returns the length of the IP packet at frame[l3:] from its header, and
// whether it is IPv6; ok is false when the header or the packet is cut.
func ipLength(frame []byte, l3 int) (n int, v6, ok bool) {
	if l3 < 0 || l3+ipv4HdrLen > len(frame) {
		return 0, false, false
	}
	switch frame[l3] >> 4 {
	case 4:
		n = int(binary.BigEndian.Uint16(frame[l3+2:]))
	case 6:
		if l3+ipv6HdrLen > len(frame) {
			return 0, false, false
		}
		n, v6 = ipv6HdrLen+int(binary.BigEndian.Uint16(frame[l3+4:])), true
	default:
		return 0, false, false
	}
	return n, v6, n >= ipv4HdrLen && l3+n <= len(frame)
}

// writeOuter writes the outer IP (and UDP) header, hl bytes, at the front of pkt, the
// outer packet (the inner packet follows the headers).
func writeOuter(pkt []byte, hl int, inner6 bool, srv *tables.Server, hash uint32) {
	h := pkt[:hl]
	innerLen := len(pkt) - hl
	proto := byte(protoIPIP)
	if inner6 {
		proto = protoIPv6Encap
	}
	ipl := ipv4HdrLen
	if srv.Addr.Is6() {
		ipl = ipv6HdrLen
	}
	if srv.Encap == tables.EncapGUE {
		proto = protoUDP
	}
	total := len(h) + innerLen
	if ipl == ipv4HdrLen {
		_ = h[19]
		h[0], h[1] = 0x45, 0
		binary.BigEndian.PutUint16(h[2:], uint16(total))
		h[4], h[5], h[6], h[7] = 0, 0, 0x40, 0 // DF: the inner packet fits our MTU
		h[8], h[9], h[10], h[11] = outerTTL, proto, 0, 0
		s, dst := srv.TunnelSrc.As4(), srv.Addr.As4()
		copy(h[12:16], s[:])
		copy(h[16:20], dst[:])
		binary.BigEndian.PutUint16(h[10:], ^checksum.Fold(checksum.Sum(h[:20], 0)))
	} else {
		_ = h[39]
		// Flow label from the flow's hash, so that ECMP and RSS on the way spread it.
		binary.BigEndian.PutUint32(h[0:], 6<<28|hash&0xfffff)
		binary.BigEndian.PutUint16(h[4:], uint16(total-ipv6HdrLen))
		h[6], h[7] = proto, outerTTL
		s, dst := srv.TunnelSrc.As16(), srv.Addr.As16()
		copy(h[8:24], s[:])
		copy(h[24:40], dst[:])
	}
	if srv.Encap != tables.EncapGUE {
		return
	}
	u := h[ipl:]
	_ = u[7]
	binary.BigEndian.PutUint16(u[0:], GUESourcePort(hash))
	binary.BigEndian.PutUint16(u[2:], srv.GUEPort)
	binary.BigEndian.PutUint16(u[4:], uint16(udpHdrLen+innerLen))
	u[6], u[7] = 0, 0 // IPv4: no checksum; IPv6: computed over the datagram below
	if ipl == ipv6HdrLen {
		acc := checksum.Pseudo(h[8:24], h[24:40], uint32(udpHdrLen+innerLen), protoUDP)
		c := ^checksum.Fold(checksum.Sum(pkt[ipl:], acc))
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(u[6:], c)
	}
}

// flowHash mixes a client address and ports into the hash that picks the GUE source
// port and the IPv6 flow label. The steering program computes the same (encap.h).
func flowHash(src [16]byte, sport, dport uint16) uint32 {
	h := uint32(0x9e3779b9)
	for i := 0; i < 16; i += 4 {
		h = (h ^ binary.LittleEndian.Uint32(src[i:])) * 0x85ebca6b
		h ^= h >> 13
	}
	h = (h ^ (uint32(sport)<<16 | uint32(dport))) * 0xc2b2ae35
	h ^= h >> 16
	return h
}

// GUESourcePort returns the outer UDP source port for a flow hash: 49152..65535, so
// that the real server's NIC spreads flows over its queues (RSS on the outer ports).
func GUESourcePort(hash uint32) uint16 { return 0xc000 | uint16(hash&0x3fff) }

// tooBig turns the frame, whose IP packet at l3 of n bytes is too big for the tunnel,
// into an ICMP "fragmentation needed" (IPv4) or "packet too big" (IPv6) from the
// packet's destination (the VIP) to its source (the client), announcing mtu, with as
// much of the packet quoted as fits; Ethernet: back to origSrc from local. It returns
// the new frame length (never more than the old one), or 0 when the frame is too
// short to quote the packet's header.
func tooBig(frame []byte, l3, n int, v6 bool, mtu int, origSrc, local [6]byte) int {
	hl := ipv4HdrLen
	if v6 {
		hl = ipv6HdrLen
	}
	q := min(n, len(frame)-l3-hl-icmpHdrLen) // the quote moves back by hl+8
	if q < hl+8 {
		return 0
	}
	copy(frame[0:6], origSrc[:])
	copy(frame[6:12], local[:])
	if !v6 {
		q = min(q, tooBigQuoteV4)
		copy(frame[l3+ipv4HdrLen+icmpHdrLen:], frame[l3:l3+q])
		quote := frame[l3+ipv4HdrLen+icmpHdrLen:]
		h := frame[l3 : l3+ipv4HdrLen]
		total := ipv4HdrLen + icmpHdrLen + q
		h[0], h[1] = 0x45, 0
		binary.BigEndian.PutUint16(h[2:], uint16(total))
		h[4], h[5], h[6], h[7] = 0, 0, 0, 0
		h[8], h[9], h[10], h[11] = outerTTL, protoICMP, 0, 0
		copy(h[12:16], quote[16:20]) // from the VIP
		copy(h[16:20], quote[12:16]) // to the client
		binary.BigEndian.PutUint16(h[10:], ^checksum.Fold(checksum.Sum(h, 0)))
		ic := frame[l3+ipv4HdrLen : l3+ipv4HdrLen+icmpHdrLen+q]
		ic[0], ic[1], ic[2], ic[3], ic[4], ic[5] = 3, 4, 0, 0, 0, 0
		binary.BigEndian.PutUint16(ic[6:], uint16(max(mtu, 68)))
		binary.BigEndian.PutUint16(ic[2:], ^checksum.Fold(checksum.Sum(ic, 0)))
		return l3 + total
	}
	q = min(q, tooBigQuoteV6)
	copy(frame[l3+ipv6HdrLen+icmpHdrLen:], frame[l3:l3+q])
	quote := frame[l3+ipv6HdrLen+icmpHdrLen:]
	h := frame[l3 : l3+ipv6HdrLen]
	binary.BigEndian.PutUint32(h[0:], 6<<28)
	binary.BigEndian.PutUint16(h[4:], uint16(icmpHdrLen+q))
	h[6], h[7] = protoICMPv6, 255
	copy(h[8:24], quote[24:40]) // from the VIP
	copy(h[24:40], quote[8:24]) // to the client
	ic := frame[l3+ipv6HdrLen : l3+ipv6HdrLen+icmpHdrLen+q]
	ic[0], ic[1], ic[2], ic[3] = 2, 0, 0, 0
	binary.BigEndian.PutUint32(ic[4:], uint32(max(mtu, minIPv6MTU)))
	c := checksum.Pseudo(h[8:24], h[24:40], uint32(len(ic)), protoICMPv6)
	binary.BigEndian.PutUint16(ic[2:], ^checksum.Fold(checksum.Sum(ic, c)))
	return l3 + ipv6HdrLen + icmpHdrLen + q
}
