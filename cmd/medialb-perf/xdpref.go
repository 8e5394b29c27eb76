package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/perf/xdpref"
)

// refSpec is the in-kernel XDP_TX reference run on its own (medialb-perf --xdp-tx-ref),
// for the VM lab's bench: the guest has no namespace harness, only this binary.
type refSpec struct {
	ifname         string
	dstMAC, srcMAC net.HardwareAddr
	vips           []afxdp.VIP
}

// parseRef parses "IFACE,DSTMAC,SRCMAC,VIP,LO-HI": frames to VIP on UDP or TCP ports
// LO..HI arriving on IFACE leave it again with XDP_TX, from SRCMAC to DSTMAC.
func parseRef(s string) (refSpec, error) {
	f := strings.Split(s, ",")
	if len(f) != 5 || f[0] == "" {
		return refSpec{}, fmt.Errorf("parse --xdp-tx-ref %q: want IFACE,DSTMAC,SRCMAC,VIP,LO-HI", s)
	}
	var r refSpec
	var err error
	r.ifname = f[0]
	if r.dstMAC, err = net.ParseMAC(f[1]); err != nil || len(r.dstMAC) != 6 {
		return refSpec{}, fmt.Errorf("parse --xdp-tx-ref: destination MAC %q: want 6 bytes (%v)", f[1], err)
	}
	if r.srcMAC, err = net.ParseMAC(f[2]); err != nil || len(r.srcMAC) != 6 {
		return refSpec{}, fmt.Errorf("parse --xdp-tx-ref: source MAC %q: want 6 bytes (%v)", f[2], err)
	}
	vip, err := netip.ParseAddr(f[3])
	if err != nil {
		return refSpec{}, fmt.Errorf("parse --xdp-tx-ref: VIP: %w", err)
	}
	lo, hi, ok := strings.Cut(f[4], "-")
	l, errL := strconv.ParseUint(lo, 10, 16)
	h, errH := strconv.ParseUint(hi, 10, 16)
	if !ok || errL != nil || errH != nil || l == 0 || l > h {
		return refSpec{}, fmt.Errorf("parse --xdp-tx-ref: ports %q: want LO-HI, 1 <= LO <= HI <= 65535", f[4])
	}
	ports := []afxdp.PortRange{{Lo: uint16(l), Hi: uint16(h)}}
	for _, p := range []uint8{afxdp.ProtoUDP, afxdp.ProtoTCP} {
		r.vips = append(r.vips, afxdp.VIP{Addr: vip, Proto: p, Ports: ports, Service: "ref", FastPath: true})
	}
	return r, nil
}

// runRef attaches the reference and keeps it until SIGINT or SIGTERM, then prints its
// counters.
func runRef(spec string) error {
	r, err := parseRef(spec)
	if err != nil {
		return err
	}
	a, err := xdpref.AttachXDPTXForwarder(r.ifname, r.dstMAC, r.srcMAC, r.vips)
	if err != nil {
		return fmt.Errorf("attach the XDP_TX reference to %s: %w", r.ifname, err)
	}
	defer a.Close()
	fmt.Printf("XDP_TX reference attached to %s (%s mode)\n", r.ifname, a.Mode())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	fmt.Printf("tx_fwd %d\n", a.ProgramStats()["tx_fwd"])
	return nil
}
