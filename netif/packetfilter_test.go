package netif

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"testing"
)

// runFilter is a slow, obvious classic-BPF interpreter for the instructions
// filterProgram uses (absolute loads, JEQ and JA with constants, RET). It
// fails the test on anything else, on a jump out of the program and on a load
// past the frame, which the kernel treats as a drop.
func runFilter(t *testing.T, prog []syscall.SockFilter, frame []byte) uint32 {
	t.Helper()
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		ins := prog[pc]
		load := func(n int) bool {
			off := int(ins.K)
			if off+n > len(frame) {
				return false
			}
			switch n {
			case 1:
				a = uint32(frame[off])
			case 2:
				a = uint32(binary.BigEndian.Uint16(frame[off:]))
			default:
				a = binary.BigEndian.Uint32(frame[off:])
			}
			return true
		}
		switch ins.Code {
		case syscall.BPF_LD | syscall.BPF_B | syscall.BPF_ABS:
			if !load(1) {
				return 0
			}
		case syscall.BPF_LD | syscall.BPF_H | syscall.BPF_ABS:
			if !load(2) {
				return 0
			}
		case syscall.BPF_LD | syscall.BPF_W | syscall.BPF_ABS:
			if !load(4) {
				return 0
			}
		case syscall.BPF_JMP | syscall.BPF_JEQ | syscall.BPF_K:
			if a == ins.K {
				pc += int(ins.Jt)
			} else {
				pc += int(ins.Jf)
			}
		case syscall.BPF_JMP | syscall.BPF_JA:
			pc += int(ins.K)
		case syscall.BPF_RET | syscall.BPF_K:
			return ins.K
		default:
			t.Fatalf("instruction %d: unexpected code %#x", pc, ins.Code)
		}
		if pc+1 >= len(prog) {
			t.Fatalf("instruction %d jumps out of the program (%d instructions)", pc, len(prog))
		}
	}
	t.Fatal("program ended without a return")
	return 0
}

// testFrame is an Ethernet frame of type typ carrying an IP header from src
// to dst with protocol proto (type ARP: a zeroed ARP body).
func testFrame(typ uint16, src, dst netip.Addr, proto byte) []byte {
	f := make([]byte, 14, 128)
	binary.BigEndian.PutUint16(f[12:], typ)
	switch typ {
	case 0x0800:
		ip := make([]byte, 40)
		ip[0], ip[9] = 0x45, proto
		s, d := src.As4(), dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		f = append(f, ip...)
	case 0x86dd:
		ip := make([]byte, 60)
		ip[0], ip[6] = 0x60, proto
		s, d := src.As16(), dst.As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
		f = append(f, ip...)
	default:
		f = append(f, make([]byte, 28)...)
	}
	return f
}

func TestFilterProgram(t *testing.T) {
	a := netip.MustParseAddr
	src4, src6 := a("192.168.94.2"), a("fd94::2")
	vip4, vip6 := a("192.168.94.110"), a("fd94::110")
	server4, server6 := a("192.168.94.11"), a("fd94::11")
	const tcp, icmp6 = 6, 58
	many := []netip.Addr{vip4, vip6}
	for i := range 300 {
		many = append(many, netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}),
			netip.AddrFrom16([16]byte{0xfd, 0x95, 14: byte(i >> 8), 15: byte(i)}))
	}
	last4, last6 := many[len(many)-2], many[len(many)-1]
	tooMany := []netip.Addr{}
	for i := range 3000 {
		tooMany = append(tooMany, netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}))
	}
	tests := []struct {
		name   string
		from   []netip.Addr
		frame  []byte
		accept bool
	}{
		{"arp", []netip.Addr{vip4}, testFrame(0x0806, netip.Addr{}, netip.Addr{}, 0), true},
		{"ipv4 probe reply from the VIP", []netip.Addr{vip4, vip6}, testFrame(0x0800, vip4, src4, tcp), true},
		// The layer-7 proxy's traffic with its real servers: addressed to this
		// node, not from a VIP. The filter without a source match took it.
		{"ipv4 from a real server to this node", []netip.Addr{vip4, vip6}, testFrame(0x0800, server4, src4, tcp), false},
		{"ipv4 from the VIP to another address", []netip.Addr{vip4}, testFrame(0x0800, vip4, server4, tcp), false},
		{"ipv4 with no VIP to hear from", nil, testFrame(0x0800, vip4, src4, tcp), false},
		{"icmpv6 from anywhere", []netip.Addr{vip4}, testFrame(0x86dd, server6, a("ff02::1"), icmp6), true},
		{"ipv6 probe reply from the VIP", []netip.Addr{vip4, vip6}, testFrame(0x86dd, vip6, src6, tcp), true},
		{"ipv6 from a real server to this node", []netip.Addr{vip4, vip6}, testFrame(0x86dd, server6, src6, tcp), false},
		{"ipv6 from the VIP to another address", []netip.Addr{vip6}, testFrame(0x86dd, vip6, server6, tcp), false},
		{"ipv6 differing in the last word only", []netip.Addr{a("fd94::1:110")}, testFrame(0x86dd, a("fd94::2:110"), src6, tcp), false},
		{"other ethertype", []netip.Addr{vip4}, testFrame(0x88cc, vip4, src4, 0), false},
		{"ipv4 from the last of 300 sources", many, testFrame(0x0800, last4, src4, tcp), true},
		{"ipv6 from the last of 300 sources", many, testFrame(0x86dd, last6, src6, tcp), true},
		{"ipv4 from none of 300 sources", many, testFrame(0x0800, server4, src4, tcp), false},
		{"ipv6 from none of 300 sources", many, testFrame(0x86dd, server6, src6, tcp), false},
		{"more sources than a program holds: any", tooMany, testFrame(0x0800, server4, src4, tcp), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog := filterProgram(src4, src6, tt.from)
			if len(prog) > maxFilterLen {
				t.Fatalf("program of %d instructions, the kernel takes %d", len(prog), maxFilterLen)
			}
			if got := runFilter(t, prog, tt.frame) != 0; got != tt.accept {
				t.Fatalf("accepted %v, want %v", got, tt.accept)
			}
		})
	}
}
