package perf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// counter is an XDP program that counts the frames addressed to one of a set of MACs
// (the real servers') and drops every frame: the arrival count of the throughput runs.
// On a real server's veth it counts what reached that server; on the bridge port facing
// the load balancer it counts what the load balancer put on the wire with a real
// server's MAC, at a cost that does not depend on the forwarder and without the
// bridge and real-server work on the generator's CPU. Frames to other MACs are counted
// apart (Others). Of the frames to the wanted MACs, those from an IPv4 source in
// 10.0.0.0/8 (the lab's clients; the flood's spray comes from 11.0.0.0/8) are also
// counted under key 2 (Clients), so that the flood bench sees what became of the
// established clients' frames and not only of the total.
type counter struct {
	m    *ebpf.Map
	prog *ebpf.Program
	l    link.Link
}

// attachCounter loads the counting program for macs and attaches it (native mode) to
// ifname in namespace ns.
func attachCounter(ns, ifname string, macs []net.HardwareAddr) (*counter, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 3})
	if err != nil {
		return nil, fmt.Errorf("create counter map: %w (root? memlock limit?)", err)
	}
	// r6 = data, r7 = data_end, r8 = key (1: other), r9 = 1 for a client frame (key 2
	// too). The destination MAC is loaded as a
	// little-endian u32 and u16 and compared with each wanted MAC loaded the same way
	// (64-bit immediates: a 32-bit one would be sign-extended).
	insns := asm.Instructions{
		asm.LoadMem(asm.R6, asm.R1, 0, asm.Word),
		asm.LoadMem(asm.R7, asm.R1, 4, asm.Word),
		asm.Mov.Imm(asm.R8, 1),
		asm.Mov.Imm(asm.R9, 0),
		asm.Mov.Reg(asm.R2, asm.R6),
		asm.Add.Imm(asm.R2, 6),
		asm.JGT.Reg(asm.R2, asm.R7, "count"),
		asm.LoadMem(asm.R4, asm.R6, 0, asm.Word),
		asm.LoadMem(asm.R5, asm.R6, 4, asm.Half),
	}
	for i, mac := range macs {
		next := fmt.Sprintf("next%d", i)
		insns = append(insns,
			asm.LoadImm(asm.R0, int64(binary.LittleEndian.Uint32(mac[0:4])), asm.DWord),
			asm.JNE.Reg(asm.R4, asm.R0, next),
			asm.LoadImm(asm.R0, int64(binary.LittleEndian.Uint16(mac[4:6])), asm.DWord),
			asm.JNE.Reg(asm.R5, asm.R0, next),
			asm.Mov.Imm(asm.R8, 0),
			asm.Ja.Label("client"),
			asm.Mov.Imm(asm.R0, 0).WithSymbol(next), // a landing place for the jumps
		)
	}
	insns = append(insns,
		asm.Ja.Label("count"),
		// A wanted MAC: IPv4 (EtherType 0x0800, loaded little-endian) from 10/8?
		asm.Mov.Reg(asm.R2, asm.R6).WithSymbol("client"),
		asm.Add.Imm(asm.R2, 27),
		asm.JGT.Reg(asm.R2, asm.R7, "count"),
		asm.LoadMem(asm.R3, asm.R6, 12, asm.Half),
		asm.JNE.Imm(asm.R3, 0x0008, "count"),
		asm.LoadMem(asm.R3, asm.R6, 26, asm.Byte),
		asm.JNE.Imm(asm.R3, 10, "count"),
		asm.Mov.Imm(asm.R9, 1),
	)
	insns = append(insns, countKey(m, asm.R8, "count", "counted")...)
	insns = append(insns, asm.JEq.Imm(asm.R9, 0, "drop").WithSymbol("counted"), asm.Mov.Imm(asm.R8, 2))
	insns = append(insns, countKey(m, asm.R8, "", "drop")...)
	insns = append(insns,
		asm.Mov.Imm(asm.R0, 1).WithSymbol("drop"), // XDP_DROP
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL", Instructions: insns})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("load counting program: %w", err)
	}
	c := &counter{m: m, prog: prog}
	err = inNS(ns, func() error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("look up %s: %w", ifname, err)
		}
		c.l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: l.Attrs().Index, Flags: link.XDPDriverMode})
		if err != nil {
			return fmt.Errorf("attach counting program to %s: %w", ifname, err)
		}
		return nil
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// countKey adds 1 to the per-CPU counter at key reg of m (the first instruction gets
// the symbol sym, unless empty) and goes on at label next.
func countKey(m *ebpf.Map, reg asm.Register, sym, next string) asm.Instructions {
	first := asm.StoreMem(asm.R10, -4, reg, asm.Word)
	if sym != "" {
		first = first.WithSymbol(sym)
	}
	return asm.Instructions{
		first,
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, next),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1), // per-CPU slot: no atomic needed
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Ja.Label(next),
	}
}

// Clients returns the frames to the wanted MACs from 10.0.0.0/8 counted so far.
func (c *counter) Clients() (uint64, error) { return c.read(2) }

// Count returns the frames to the wanted MACs counted so far, summed over CPUs.
func (c *counter) Count() (uint64, error) { return c.read(0) }

// Others returns the frames to other MACs counted so far.
func (c *counter) Others() (uint64, error) { return c.read(1) }

func (c *counter) read(key uint32) (uint64, error) {
	var per []uint64
	if err := c.m.Lookup(key, &per); err != nil {
		return 0, fmt.Errorf("read counter: %w", err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

// Close detaches the program and frees it.
func (c *counter) Close() error {
	var errs []error
	if c.l != nil {
		errs = append(errs, c.l.Close())
	}
	errs = append(errs, c.prog.Close(), c.m.Close())
	return errors.Join(errs...)
}
