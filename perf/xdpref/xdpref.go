// Package xdpref holds the in-kernel XDP programs medialb's benchmarks and labs
// measure and run beside the product, in a BPF object of their own (bpf/ref.c),
// so that afxdp ships only the steering program:
//
//   - AttachXDPTXForwarder: the steering program's keys (bpf/ref.c includes
//     afxdp's bpf/parse.h), but the MACs are rewritten in the kernel and frames
//     leave with XDP_TX: the limit the perf harness compares the AF_XDP pipeline
//     with.
//   - AttachPass: XDP_PASS for every frame. A veth receives frames its peer
//     sends with XDP_TX (the fast path, the reference) only when it has an XDP
//     program itself; the labs put this one on the switch port.
//
// Both attach through a BPF link as afxdp.Open does ([afxdp.AttachProgram]), in
// the calling thread's network namespace.
package xdpref

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/rs/zerolog"

	"github.com/medialb/medialb/afxdp"
)

// counterNames are the reference's counters, index = enum stat in bpf/ref.c:
// parse.h's pass reasons, then its own.
var counterNames = append(afxdp.ParseCounters[:len(afxdp.ParseCounters):len(afxdp.ParseCounters)], "tx_fwd")

// Attachment is an XDP program attached through a BPF link by
// AttachXDPTXForwarder or AttachPass. Close detaches it.
type Attachment struct {
	link  link.Link
	prog  *ebpf.Program
	objs  []interface{ Close() error } // prog and its maps
	stats *ebpf.Map
	mode  string
}

// Mode returns the XDP mode the program runs in: native or generic.
func (a *Attachment) Mode() string { return a.mode }

// ProgramStats returns the program's counters by name: tx_fwd (rewritten and
// sent with XDP_TX), pass (to the kernel) and pass_* by reason, as
// afxdp.Dataplane.ProgramStats names them. AttachPass has none.
func (a *Attachment) ProgramStats() map[string]uint64 {
	if a.stats == nil {
		return map[string]uint64{}
	}
	return afxdp.ReadCounters(a.stats, counterNames)
}

// Close detaches the program; the interface is left without one.
func (a *Attachment) Close() error {
	var errs []error
	if a.link != nil {
		if err := a.link.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach XDP program: %w", err))
		}
		a.link = nil
	}
	for _, o := range a.objs {
		if err := o.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	a.objs = nil
	return errors.Join(errs...)
}

// AttachPass attaches xdp_pass (every frame to the kernel) to ifname. On a
// veth it makes the interface receive frames its peer sends with XDP_TX or
// redirects into it. It replaces a program attached through netlink.
func AttachPass(ifname string) (*Attachment, error) {
	var objs struct {
		Prog *ebpf.Program `ebpf:"xdp_pass"`
	}
	spec, err := loadRef()
	if err != nil {
		return nil, fmt.Errorf("load BPF spec: %w", err)
	}
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, fmt.Errorf("load xdp_pass: %w", err)
	}
	lk, mode, err := afxdp.AttachProgram(objs.Prog, ifname, afxdp.ModeAuto, zerolog.Nop())
	if err != nil {
		objs.Prog.Close()
		return nil, err
	}
	return &Attachment{link: lk, prog: objs.Prog, objs: []interface{ Close() error }{objs.Prog}, mode: mode}, nil
}

// AttachXDPTXForwarder attaches xdp_tx_fwd to ifname: frames matching vips
// (the same steering keys as the AF_XDP path) get dstMAC as destination and
// srcMAC (normally the interface's) as source and leave through XDP_TX; the
// rest goes to the kernel. It is the in-kernel reference the perf harness
// compares the AF_XDP pipeline with.
func AttachXDPTXForwarder(ifname string, dstMAC, srcMAC net.HardwareAddr, vips []afxdp.VIP) (*Attachment, error) {
	a, err := loadForwarder(dstMAC, srcMAC, vips)
	if err != nil {
		return nil, err
	}
	a.link, a.mode, err = afxdp.AttachProgram(a.prog, ifname, afxdp.ModeAuto, zerolog.Nop())
	if err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// loadForwarder loads xdp_tx_fwd with its map filled, not attached.
func loadForwarder(dstMAC, srcMAC net.HardwareAddr, vips []afxdp.VIP) (*Attachment, error) {
	if len(dstMAC) != 6 || len(srcMAC) != 6 {
		return nil, fmt.Errorf("attach XDP_TX forwarder: MAC addresses must be 6 bytes (dst %v, src %v)", dstMAC, srcMAC)
	}
	keys, err := afxdp.Keys(vips)
	if err != nil {
		return nil, fmt.Errorf("attach XDP_TX forwarder: %w", err)
	}
	spec, err := loadRef()
	if err != nil {
		return nil, fmt.Errorf("load BPF spec: %w", err)
	}
	if n := uint32(len(keys)); n > spec.Maps["fwd_vips"].MaxEntries {
		return nil, fmt.Errorf("attach XDP_TX forwarder: %d steering keys exceed the map's %d entries (fewer ports or VIPs)", n, spec.Maps["fwd_vips"].MaxEntries)
	}
	var objs struct {
		Prog  *ebpf.Program `ebpf:"xdp_tx_fwd"`
		Fwd   *ebpf.Map     `ebpf:"fwd_vips"`
		Stats *ebpf.Map     `ebpf:"stats"`
	}
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, fmt.Errorf("load xdp_tx_fwd: %w", err)
	}
	a := &Attachment{prog: objs.Prog, objs: []interface{ Close() error }{objs.Prog, objs.Fwd, objs.Stats}, stats: objs.Stats}
	var v refFwdValue
	copy(v.DstMac[:], dstMAC)
	copy(v.SrcMac[:], srcMAC)
	for k := range keys {
		if err := objs.Fwd.Put(k, v); err != nil {
			a.Close()
			return nil, fmt.Errorf("fill forwarder map: %w", err)
		}
	}
	return a, nil
}
