package netif

import (
	"encoding/binary"
	"fmt"
	"github.com/medialb/medialb/internal/checksum"
	"net"
	"net/netip"
	"syscall"
)

// Announce tells the segment that addr now lives at the interface's MAC address: a
// gratuitous ARP request and reply for IPv4, an unsolicited neighbour advertisement with
// the override flag for IPv6 (RFC 4861 section 7.2.6). Switches and hosts update their
// tables at once, so a VIP that moved (an HA takeover, a restart) is reachable without
// waiting for caches to expire.
//
// The frames go out through an AF_PACKET socket. The standard library's syscall package
// is enough for that (no unsafe is needed), so this stays outside afxdp/.
func Announce(ifname string, addr netip.Addr) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("announce %s: find interface %s: %w", addr, ifname, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("announce %s on %s: interface has no Ethernet address", addr, ifname)
	}
	var mac [6]byte
	copy(mac[:], ifi.HardwareAddr)
	var frames [][]byte
	addr = addr.Unmap()
	if addr.Is4() {
		frames = [][]byte{GratuitousARP(mac, addr, 1), GratuitousARP(mac, addr, 2)}
	} else {
		frames = [][]byte{UnsolicitedNA(mac, addr)}
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, 0)
	if err != nil {
		return fmt.Errorf("announce %s: open packet socket: %w (needs CAP_NET_RAW)", addr, err)
	}
	defer syscall.Close(fd)
	for _, f := range frames {
		sa := &syscall.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6, Protocol: htons(binary.BigEndian.Uint16(f[12:14]))}
		copy(sa.Addr[:], f[0:6])
		if err := syscall.Sendto(fd, f, 0, sa); err != nil {
			return fmt.Errorf("announce %s on %s: send: %w", addr, ifname, err)
		}
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// GratuitousARP builds a broadcast ARP frame (op 1 request, op 2 reply) in which sender
// and target protocol address are both ip, as Linux's arping -U and -A send them.
func GratuitousARP(mac [6]byte, ip netip.Addr, op uint16) []byte {
	f := make([]byte, 42)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac[:])
	binary.BigEndian.PutUint16(f[12:], 0x0806)
	binary.BigEndian.PutUint16(f[14:], 1)      // Ethernet
	binary.BigEndian.PutUint16(f[16:], 0x0800) // IPv4
	f[18], f[19] = 6, 4
	binary.BigEndian.PutUint16(f[20:], op)
	a := ip.As4()
	copy(f[22:28], mac[:])
	copy(f[28:32], a[:])
	if op == 2 {
		copy(f[32:38], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	}
	copy(f[38:42], a[:])
	return f
}

// UnsolicitedNA builds a neighbour advertisement for target, from target to the
// all-nodes group, with the override flag and the target link-layer address option.
func UnsolicitedNA(mac [6]byte, target netip.Addr) []byte {
	const icmpLen = 32
	f := make([]byte, 14+40+icmpLen)
	copy(f[0:6], []byte{0x33, 0x33, 0, 0, 0, 1})
	copy(f[6:12], mac[:])
	binary.BigEndian.PutUint16(f[12:], 0x86dd)
	ip := f[14:54]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], icmpLen)
	ip[6] = 58  // ICMPv6
	ip[7] = 255 // hop limit required by RFC 4861
	src := target.As16()
	dst := netip.MustParseAddr("ff02::1").As16()
	copy(ip[8:24], src[:])
	copy(ip[24:40], dst[:])
	icmp := f[54:]
	icmp[0] = 136                               // neighbour advertisement
	binary.BigEndian.PutUint32(icmp[4:], 1<<29) // O (override)
	copy(icmp[8:24], src[:])
	icmp[24], icmp[25] = 2, 1 // target link-layer address, 8 bytes
	copy(icmp[26:32], mac[:])
	binary.BigEndian.PutUint16(icmp[2:], icmpv6Checksum(src, dst, icmp))
	return f
}

// icmpv6Checksum is the checksum of ICMPv6 message msg from src to dst.
func icmpv6Checksum(src, dst [16]byte, msg []byte) uint16 {
	return ^checksum.Fold(checksum.Sum(msg, checksum.Pseudo(src[:], dst[:], uint32(len(msg)), 58)))
}
