package netif

import (
	"encoding/binary"
	"net/netip"
	"syscall"
)

// maxFilterLen is the kernel's limit on a classic BPF socket filter
// (BPF_MAXINSNS).
const maxFilterLen = 4096

// filterProgram is the socket filter of [PacketSocket.Filter]: ARP, ICMPv6,
// and IPv4 or IPv6 packets addressed to src4 or src6 whose source is one of
// from. With more sources than one program holds, any source is accepted.
//
// The source match is what keeps the layer-7 proxy's traffic out: the proxy
// connects to real servers from this node's own address, so every packet a
// real server sends back to the proxy is addressed to src4; delivered to the
// packet socket, each woke the blocked reader (a thread switch per packet on
// the proxy's CPU). Probe replies come from a VIP, which is what from holds.
//
// Failures jump to a drop close by and matches return at once, so no jump
// offset (8 bits in classic BPF) grows with the number of sources; the one
// long jump, over the IPv4 part, is a BPF_JA with a 32-bit offset.
func filterProgram(src4, src6 netip.Addr, from []netip.Addr) []syscall.SockFilter {
	const (
		ldH   = syscall.BPF_LD | syscall.BPF_H | syscall.BPF_ABS
		ldW   = syscall.BPF_LD | syscall.BPF_W | syscall.BPF_ABS
		ldB   = syscall.BPF_LD | syscall.BPF_B | syscall.BPF_ABS
		jeq   = syscall.BPF_JMP | syscall.BPF_JEQ | syscall.BPF_K
		ja    = syscall.BPF_JMP | syscall.BPF_JA
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
	var from4 [][4]byte
	var from6 [][16]byte
	for _, a := range from {
		switch a = a.Unmap(); {
		case a.Is4():
			from4 = append(from4, a.As4())
		case a.Is6():
			from6 = append(from6, a.As16())
		}
	}
	// 21 fixed instructions, 2 per IPv4 source, 9 per IPv6 source.
	anySource := 21+2*len(from4)+9*len(from6) > maxFilterLen
	if anySource {
		from4, from6 = nil, nil
	}
	w := func(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
	stmt := func(code uint16, k uint32) syscall.SockFilter { return syscall.SockFilter{Code: code, K: k} }
	jump := func(k uint32, jt, jf uint8) syscall.SockFilter {
		return syscall.SockFilter{Code: jeq, Jt: jt, Jf: jf, K: k}
	}

	prog := []syscall.SockFilter{
		stmt(ldH, 12),        // ethertype
		jump(etARP, 0, 1),    // ARP:
		stmt(ret, all),       //   accept
		jump(etIP4, 1, 0),    // IPv4: go on
		stmt(ja, 0),          // else to the IPv6 part (offset set below)
		stmt(ldW, 30),        // IPv4 destination
		jump(w(a4[:]), 1, 0), // ours: go on
		stmt(ret, 0),         // else drop
		stmt(ldW, 26),        // IPv4 source
	}
	if anySource {
		prog = append(prog, stmt(ret, all))
	}
	for _, a := range from4 {
		prog = append(prog, jump(w(a[:]), 0, 1), stmt(ret, all))
	}
	prog = append(prog, stmt(ret, 0))
	prog[4].K = uint32(len(prog) - 5) // the JA: from the instruction after it to here

	prog = append(prog,
		jump(etIP6, 1, 0),      // IPv6: go on
		stmt(ret, 0),           // else drop
		stmt(ldB, 20),          // next header
		jump(58, 0, 1),         // ICMPv6 (neighbour advertisements, echo replies):
		stmt(ret, all),         //   accept
		stmt(ldW, 38),          // IPv6 destination, word by word
		jump(w(a6[0:]), 1, 0),  //
		stmt(ret, 0),           //
		stmt(ldW, 42),          //
		jump(w(a6[4:]), 1, 0),  //
		stmt(ret, 0),           //
		stmt(ldW, 46),          //
		jump(w(a6[8:]), 1, 0),  //
		stmt(ret, 0),           //
		stmt(ldW, 50),          //
		jump(w(a6[12:]), 1, 0), //
		stmt(ret, 0),           //
	)
	if anySource {
		prog = append(prog, stmt(ret, all))
	}
	for _, a := range from6 {
		// Source words at 22, 26, 30, 34; a mismatch skips to the next source.
		prog = append(prog,
			stmt(ldW, 22), jump(w(a[0:]), 0, 7),
			stmt(ldW, 26), jump(w(a[4:]), 0, 5),
			stmt(ldW, 30), jump(w(a[8:]), 0, 3),
			stmt(ldW, 34), jump(w(a[12:]), 0, 1),
			stmt(ret, all))
	}
	return append(prog, stmt(ret, 0))
}
