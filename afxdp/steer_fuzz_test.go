package afxdp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

// refClassify is the slow, obvious reference of bpf/steer.c's parse: it
// returns the lookup key, or the name of the counter of the reason the frame
// goes to the kernel.
func refClassify(f []byte) (steerVipKey, string) {
	var k steerVipKey
	if len(f) < 14 {
		return k, "pass_malformed"
	}
	et := binary.BigEndian.Uint16(f[12:])
	off := 14
	for tags := 0; et == 0x8100 || et == 0x88a8; tags++ {
		if tags == 2 {
			return k, "pass_vlan_stacked"
		}
		if len(f) < off+4 {
			return k, "pass_malformed"
		}
		et = binary.BigEndian.Uint16(f[off+2:])
		off += 4
	}
	fragKey := func() (steerVipKey, string) {
		if k.Proto != ProtoTCP && k.Proto != ProtoUDP {
			return k, "pass_no_ports"
		}
		k.Kind = keyFrag
		return k, ""
	}
	var l4 byte
	switch et {
	case 0x0800:
		if len(f) < off+20 || f[off]>>4 != 4 || int(f[off]&0xf)*4 < 20 {
			return k, "pass_malformed"
		}
		a := netip.AddrFrom4([4]byte(f[off+16 : off+20]))
		k.Addr = a.As16()
		l4 = f[off+9]
		k.Proto = l4
		if binary.BigEndian.Uint16(f[off+6:])&0x1fff != 0 {
			return fragKey()
		}
		off += int(f[off]&0xf) * 4
	case 0x86dd:
		if len(f) < off+40 {
			return k, "pass_malformed"
		}
		copy(k.Addr[:], f[off+24:off+40])
		l4 = f[off+6]
		off += 40
		isExt := func(p byte) bool { return p == 0 || p == 43 || p == 60 || p == 51 || p == 44 }
		for i := 0; i < 8 && isExt(l4); i++ {
			if off > 4096 {
				return k, "pass_ext_hdrs"
			}
			if len(f) < off+8 {
				return k, "pass_malformed"
			}
			h := f[off:]
			switch l4 {
			case 44:
				fo := binary.BigEndian.Uint16(h[2:]) & 0xfff8
				l4 = h[0]
				off += 8
				if fo != 0 {
					k.Proto = l4
					return fragKey()
				}
			case 51:
				l4 = h[0]
				off += (int(h[1]) + 2) * 4
			default:
				l4 = h[0]
				off += (int(h[1]) + 1) * 8
			}
		}
		if isExt(l4) {
			return k, "pass_ext_hdrs"
		}
		k.Proto = l4
	default:
		return k, "pass_not_ip"
	}
	if l4 == 1 && et == 0x0800 || l4 == 58 && et == 0x86dd {
		return k, "icmp" // the pipeline's differential test checks ICMP errors
	}
	if l4 != ProtoTCP && l4 != ProtoUDP {
		return k, "pass_no_ports"
	}
	if off > 4096 {
		return k, "pass_ext_hdrs"
	}
	if len(f) < off+4 {
		return k, "pass_malformed"
	}
	k.Port = binary.BigEndian.Uint16(f[off+2:])
	return k, ""
}

// FuzzSteer runs frames through the steering program (BPF_PROG_TEST_RUN,
// VIPs without the fast path and no socket in the XSKMAP, so a VIP match
// counts pass_no_socket) and compares its verdict and reason counter with
// refClassify.
func FuzzSteer(f *testing.F) {
	requireRoot(f)
	vips := []VIP{
		{Addr: ipA4, Proto: ProtoUDP, Ports: []PortRange{{5000, 5010}}},
		{Addr: ipA4, Proto: ProtoTCP, Ports: []PortRange{{554, 554}}},
		{Addr: ipA6, Proto: ProtoUDP, Ports: []PortRange{{5000, 5000}}},
	}
	keys, err := Keys(vips)
	if err != nil {
		f.Fatal(err)
	}
	var objs steerObjects
	if err := loadSteerObjects(&objs, nil); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { objs.Close() })
	for k := range keys {
		if err := objs.Vips.Put(k, uint8(0)); err != nil {
			f.Fatal(err)
		}
	}
	ma, mb := net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}
	seeds := [][]byte{
		udp4(ma, mb, ipB4, ipA4, 1, 5000, []byte("x")),
		udp4(ma, mb, ipB4, ipA4, 1, 5011, []byte("x")),
		tagged(udp4(ma, mb, ipB4, ipA4, 1, 5005, nil), 10),
		tagged(tagged(udp4(ma, mb, ipB4, ipA4, 1, 5005, nil), 10), 20),
		udp6(ma, mb, ipB6, ipA6, 1, 5000, []byte("x")),
		udp6(ma, mb, ipB6, ipA6, 1, 5000, nil, 0, 43, 60),
		udp6(ma, mb, ipB6, ipA6, 1, 5000, nil, 60, 60, 60, 60, 60, 60, 60),
		udp6(ma, mb, ipB6, ipA6, 1, 5000, nil)[:60],
	}
	frag := udp4(ma, mb, ipB4, ipA4, 1, 5000, make([]byte, 100))
	frag[14+6], frag[14+7] = 0x00, 0x10 // offset 16*8
	seeds = append(seeds, frag)
	tcp := udp4(ma, mb, ipB4, ipA4, 1, 554, make([]byte, 12))
	tcp[14+9] = ProtoTCP
	seeds = append(seeds, tcp)
	for _, s := range seeds {
		f.Add(s)
	}
	per := make([]uint64, 0, 64)
	read := func(name string) uint64 {
		for i, n := range statNames {
			if n == name {
				var sum uint64
				if err := objs.Stats.Lookup(uint32(i), &per); err != nil {
					f.Fatal(err)
				}
				for _, v := range per {
					sum += v
				}
				return sum
			}
		}
		f.Fatalf("no counter %s", name)
		return 0
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 1500 {
			t.Skip("BPF_PROG_TEST_RUN takes 14 to ~3500 bytes; media frames are at most 1500")
		}
		key, reason := refClassify(frame)
		if reason == "icmp" {
			t.Skip("ICMP: pipeline's TestSteerAgrees compares the program with ParseICMPError")
		}
		if reason == "" {
			if _, ok := keys[key]; ok {
				reason = "pass_no_socket"
			} else {
				reason = "pass_no_vip"
			}
		}
		before := read(reason)
		ret, err := objs.XdpSteer.Run(&ebpf.RunOptions{Data: frame})
		if err != nil {
			t.Fatal(err)
		}
		if ret != 2 { // XDP_PASS: no socket, so a VIP's frame goes to the kernel too
			t.Fatalf("program returned %d, want XDP_PASS; reference says %s (key %+v)", ret, reason, key)
		}
		if read(reason) != before+1 {
			t.Fatalf("counter %s did not move; reference key %+v", reason, key)
		}
	})
}
