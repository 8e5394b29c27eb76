package vm

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/medialb/medialb/lab"
)

// benchPort is the generator's destination port: in the VIP's range, with no listener on
// the real servers (they answer nothing but a rate-limited ICMP error).
const benchPort = 50001

// udpFrame returns a 60-byte Ethernet/IPv4/UDP frame from src:sport to dst:dport.
func udpFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, sport, dport uint16) []byte {
	f := make([]byte, 60)
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(ip[2:], 46)
	s, d := src.As4(), dst.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	sum := uint32(0)
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := f[34:]
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], 26)
	return f
}

func TestUDPFrame(t *testing.T) {
	f := udpFrame(net.HardwareAddr{2, 0, 0, 0, 0, 2}, net.HardwareAddr{2, 0, 0, 0, 0, 1},
		netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.168.94.110"), 40000, benchPort)
	// The header checksum of a correct header sums to 0xffff.
	sum := uint32(0)
	for i := 14; i < 34; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(f[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	if sum != 0xffff || len(f) != 60 || f[23] != unix.IPPROTO_UDP || binary.BigEndian.Uint16(f[36:]) != benchPort {
		t.Errorf("bad frame (header sum %#x): % x", sum, f)
	}
}

// generator writes frames into the load balancer's tap from the host's side (the switch
// namespace): they arrive on the guest NIC's queues as the tap's flow hash spreads them.
type generator struct {
	fd     int
	frames [][]byte
}

func newGenerator(l *Lab, frames [][]byte) (*generator, error) {
	g := &generator{fd: -1, frames: frames}
	err := lab.Do(l.NS, func() error {
		link, err := netlink.LinkByName(l.LB.Tap)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		g.fd = fd
		return unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: link.Attrs().Index})
	})
	if err != nil {
		if g.fd >= 0 {
			unix.Close(g.fd)
		}
		return nil, fmt.Errorf("generator on %s: %w", l.LB.Tap, err)
	}
	return g, nil
}

// send offers pps frames per second (in 1 ms bursts) for d and returns how many it wrote.
func (g *generator) send(pps int, d time.Duration) uint64 {
	burst := max(pps/1000, 1)
	var sent uint64
	i := 0
	start := time.Now()
	for tick := start; time.Since(start) < d; tick = tick.Add(time.Millisecond) {
		for range burst {
			if _, err := unix.Write(g.fd, g.frames[i]); err == nil {
				sent++
			}
			i = (i + 1) % len(g.frames)
		}
		time.Sleep(time.Until(tick.Add(time.Millisecond)))
	}
	return sent
}
