package netif

import (
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
	// Frames the interface sends are of no use (Recv skips them): with this
	// option the kernel does not clone every outgoing frame for the socket.
	// Older kernels (before 4.20) lack it; Recv's check covers them.
	const packetIgnoreOutgoing = 23 // PACKET_IGNORE_OUTGOING, linux/if_packet.h
	_ = syscall.SetsockoptInt(fd, syscall.SOL_PACKET, packetIgnoreOutgoing, 1)
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
// back) from one of from (the VIPs the probes went to). The traffic of the VIPs, which is most of what the interface
// carries, and the layer-7 proxy's traffic with the real servers, which is
// addressed to this node, never reach the socket (see filterProgram). An
// invalid address matches nothing.
func (p *PacketSocket) Filter(src4, src6 netip.Addr, from []netip.Addr) error {
	if err := syscall.AttachLsf(p.fd, filterProgram(src4, src6, from)); err != nil { //nolint:staticcheck // x/net/bpf is not a dependency; the syscall form is enough here
		return fmt.Errorf("attach socket filter: %w", err)
	}
	return nil
}
