package netif

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// PacketSocket sends and receives whole Ethernet frames on one interface
// (AF_PACKET, every protocol): what realserver's ARP/ND watch and
// direct-routing path check need to send frames the kernel would not (a
// probe to a VIP with a real server's MAC) and to see answers the kernel
// drops (a reply from a VIP this node holds). Frames the interface sends are
// not received. It is not safe for concurrent Recv calls.
type PacketSocket struct {
	fd    int
	index int
	mac   [6]byte
}

// OpenPacket opens a packet socket on interface ifname (needs CAP_NET_RAW).
func OpenPacket(ifname string) (*PacketSocket, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("open packet socket: find interface %s: %w", ifname, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("open packet socket on %s: interface has no Ethernet address", ifname)
	}
	const ethPAll = 0x0003
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, int(htons(ethPAll)))
	if err != nil {
		return nil, fmt.Errorf("open packet socket on %s: %w (needs CAP_NET_RAW)", ifname, err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(ethPAll), Ifindex: ifi.Index}); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("bind packet socket to %s: %w", ifname, err)
	}
	p := &PacketSocket{fd: fd, index: ifi.Index}
	copy(p.mac[:], ifi.HardwareAddr)
	return p, nil
}

// MAC returns the interface's MAC address.
func (p *PacketSocket) MAC() [6]byte { return p.mac }

// Send sends one frame as it is (its first 6 bytes are the destination).
func (p *PacketSocket) Send(frame []byte) error {
	if len(frame) < 14 {
		return errors.New("send frame: shorter than an Ethernet header")
	}
	sa := &syscall.SockaddrLinklayer{Ifindex: p.index, Halen: 6, Protocol: htons(uint16(frame[12])<<8 | uint16(frame[13]))}
	copy(sa.Addr[:], frame[0:6])
	if err := syscall.Sendto(p.fd, frame, 0, sa); err != nil {
		return fmt.Errorf("send frame: %w", err)
	}
	return nil
}

// Recv reads the next frame received into buf and returns its length; it
// returns 0 and syscall.EAGAIN when nothing came before deadline.
func (p *PacketSocket) Recv(buf []byte, deadline time.Time) (int, error) {
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return 0, syscall.EAGAIN
		}
		tv := syscall.NsecToTimeval(max(wait, time.Millisecond).Nanoseconds())
		if err := syscall.SetsockoptTimeval(p.fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
			return 0, fmt.Errorf("set receive timeout: %w", err)
		}
		n, from, err := syscall.Recvfrom(p.fd, buf, 0)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) {
				continue // the loop ends at the deadline
			}
			return 0, fmt.Errorf("receive frame: %w", err)
		}
		const packetOutgoing = 4
		if ll, ok := from.(*syscall.SockaddrLinklayer); ok && ll.Pkttype == packetOutgoing {
			continue
		}
		return n, nil
	}
}

// Close closes the socket.
func (p *PacketSocket) Close() error { return syscall.Close(p.fd) }

// Filter makes the socket receive only what the real-server checks read:
// ARP, ICMPv6 (neighbour advertisements) and IPv4 or IPv6 packets addressed
// to src4 or src6 (this node's own addresses, where probe replies come
// back). The traffic of the VIPs, which is most of what the interface
// carries, never reaches the socket. An invalid address matches nothing.
func (p *PacketSocket) Filter(src4, src6 netip.Addr) error {
	const (
		ldH   = syscall.BPF_LD | syscall.BPF_H | syscall.BPF_ABS
		ldW   = syscall.BPF_LD | syscall.BPF_W | syscall.BPF_ABS
		ldB   = syscall.BPF_LD | syscall.BPF_B | syscall.BPF_ABS
		jeq   = syscall.BPF_JMP | syscall.BPF_JEQ | syscall.BPF_K
		ret   = syscall.BPF_RET | syscall.BPF_K
		all   = 0x40000
		etARP = 0x0806
		etIP4 = 0x0800
		etIP6 = 0x86dd
	)
	var a4 [4]byte
	if src4.Is4() {
		a4 = src4.As4()
	}
	var a6 [16]byte
	if src6.Is6() && !src6.Is4In6() {
		a6 = src6.As16()
	}
	w := func(b []byte) int { return int(binary.BigEndian.Uint32(b)) }
	// Jump offsets count instructions after the jump; the program ends
	// with accept (index 16) and drop (index 17).
	prog := []syscall.SockFilter{
		*syscall.LsfStmt(ldH, 12),               // 0: ethertype
		*syscall.LsfJump(jeq, etARP, 14, 0),     // 1: ARP -> accept
		*syscall.LsfJump(jeq, etIP4, 0, 2),      // 2
		*syscall.LsfStmt(ldW, 30),               // 3: IPv4 destination
		*syscall.LsfJump(jeq, w(a4[:]), 11, 12), // 4: ours -> accept, else drop
		*syscall.LsfJump(jeq, etIP6, 0, 11),     // 5: not IPv6 -> drop
		*syscall.LsfStmt(ldB, 20),               // 6: next header
		*syscall.LsfJump(jeq, 58, 8, 0),         // 7: ICMPv6 -> accept
		*syscall.LsfStmt(ldW, 38),               // 8: IPv6 destination, word by word
		*syscall.LsfJump(jeq, w(a6[0:]), 0, 7),  // 9
		*syscall.LsfStmt(ldW, 42),               // 10
		*syscall.LsfJump(jeq, w(a6[4:]), 0, 5),  // 11
		*syscall.LsfStmt(ldW, 46),               // 12
		*syscall.LsfJump(jeq, w(a6[8:]), 0, 3),  // 13
		*syscall.LsfStmt(ldW, 50),               // 14
		*syscall.LsfJump(jeq, w(a6[12:]), 0, 1), // 15
		*syscall.LsfStmt(ret, all),              // 16: accept
		*syscall.LsfStmt(ret, 0),                // 17: drop
	}
	if err := syscall.AttachLsf(p.fd, prog); err != nil { //nolint:staticcheck // x/net/bpf is not a dependency; the syscall form is enough here
		return fmt.Errorf("attach socket filter: %w", err)
	}
	return nil
}
