package perf

import (
	"encoding/binary"
	"fmt"
	"github.com/medialb/medialb/internal/checksum"
	"net"
	"net/netip"
)

// Mix is a packet-size mix: frame lengths (Ethernet header to the end of the payload, no
// FCS) used in turn.
type Mix struct {
	Name  string
	Sizes []int
}

// The mixes of a default run: three fixed sizes and the simple IMIX (7:4:1 of 64, 576
// and 1500 bytes).
var (
	Mix64   = Mix{Name: "64", Sizes: []int{64}}
	Mix512  = Mix{Name: "512", Sizes: []int{512}}
	Mix1400 = Mix{Name: "1400", Sizes: []int{1400}}
	MixIMIX = Mix{Name: "imix", Sizes: []int{64, 64, 64, 64, 64, 64, 64, 576, 576, 576, 576, 1500}}
)

// MeanSize returns the mean frame length of m.
func (m Mix) MeanSize() float64 {
	s := 0
	for _, v := range m.Sizes {
		s += v
	}
	return float64(s) / float64(len(m.Sizes))
}

// Frame protocols: UDP datagrams and TCP segments shaped like a SYN or an ACK.
const (
	ProtoUDP = "udp"
	ProtoTCP = "tcp"
	ProtoMix = "mix" // UDP, TCP ACK, UDP, TCP SYN, ...
)

const (
	ethLen  = 14
	ipv4Len = 20
	udpLen  = 8
	tcpLen  = 20
	minUDP  = ethLen + ipv4Len + udpLen
	minTCP  = ethLen + ipv4Len + tcpLen
	// First destination port of generated frames: the VIP's media range.
	basePort = 50000
)

// frameSet is a fixed set of prebuilt frames the generator copies into its UMEM in turn.
type frameSet struct {
	buf   []byte
	off   []int
	sizes []int
}

// buildFrames prebuilds n frames from dstMAC/srcMAC to vipAddr: frame i comes from
// source i%sources (counting from sourceBase), has length mix.Sizes[i%len] and protocol
// proto, with correct IPv4 and L4 checksums.
//
// A valid src replaces sourceBase; a valid dst replaces vipAddr and the ports (all
// frames then go to dst's address and port).
func buildFrames(n, sources int, mix Mix, proto string, dstMAC, srcMAC net.HardwareAddr, src netip.Addr, dst netip.AddrPort) (*frameSet, error) {
	base, to := sourceBase, vipAddr
	if src.IsValid() {
		base = src
	}
	if dst.IsValid() {
		to = dst.Addr()
	}
	if sources < 1 || sources > 1<<16 {
		return nil, fmt.Errorf("build frames: %d sources: want 1..65536", sources)
	}
	fs := &frameSet{}
	for i := range n {
		size := mix.Sizes[i%len(mix.Sizes)]
		p := proto
		if proto == ProtoMix {
			p = ProtoUDP
			if i%2 == 1 {
				p = ProtoTCP
			}
		}
		if (p == ProtoUDP && size < minUDP) || (p == ProtoTCP && size < minTCP) || size > 1514 {
			return nil, fmt.Errorf("build frames: size %d for %s: want %d..1514", size, p, minTCP)
		}
		from := addrAdd(base, i%sources)
		f := make([]byte, size)
		var flags byte = 0x10 // ACK
		if i%4 == 3 {
			flags = 0x02 // SYN
		}
		dport := uint16(basePort + i%1000)
		if dst.IsValid() {
			dport = dst.Port()
		}
		writeFrame(f, dstMAC, srcMAC, from, to, p, uint16(10000+i%50000), dport, flags)
		fs.off = append(fs.off, len(fs.buf))
		fs.sizes = append(fs.sizes, size)
		fs.buf = append(fs.buf, f...)
	}
	return fs, nil
}

// frame returns prebuilt frame i.
func (fs *frameSet) frame(i int) []byte { return fs.buf[fs.off[i] : fs.off[i]+fs.sizes[i]] }

// writeFrame fills f (its length is the frame length) with an IPv4 UDP or TCP frame.
func writeFrame(f []byte, dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, proto string, sport, dport uint16, tcpFlags byte) {
	clear(f)
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[ethLen:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(f)-ethLen))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8] = 64
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	l4 := ip[ipv4Len:]
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	var pnum byte = 17
	var ck int
	if proto == ProtoTCP {
		pnum = 6
		binary.BigEndian.PutUint32(l4[4:], 1) // seq
		binary.BigEndian.PutUint32(l4[8:], 1) // ack
		l4[12] = 5 << 4                       // data offset
		l4[13] = tcpFlags
		binary.BigEndian.PutUint16(l4[14:], 65535) // window
		ck = 16
	} else {
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		ck = 6
	}
	ip[9] = pnum
	binary.BigEndian.PutUint16(ip[10:], ^checksum.Fold(checksum.Sum(ip[:ipv4Len], 0)))
	// Pseudo-header: addresses, protocol, L4 length.
	ps := checksum.Pseudo(ip[12:16], ip[16:20], uint32(len(l4)), pnum)
	c := ^checksum.Fold(checksum.Sum(l4, ps))
	if c == 0 && pnum == 17 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(l4[ck:], c)
}

// addrAdd returns a + n (IPv4).
func addrAdd(a netip.Addr, n int) netip.Addr {
	b := a.As4()
	v := binary.BigEndian.Uint32(b[:]) + uint32(n)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}
