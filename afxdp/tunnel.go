package afxdp

import (
	"fmt"
	"net/netip"
	"structs"
	"sync"

	"github.com/cilium/ebpf"
)

// Tunnel kinds of a [Tunnel] (the program's TUN_* values).
const (
	TunnelNone uint8 = 0 // direct routing
	TunnelIPIP uint8 = 1 // IPIP, IP6IP6, 4in6, 6in4 by the families
	TunnelGUE  uint8 = 2 // GUE variant 1: IP directly in UDP
)

// Tunnel is how the fast path reaches a tunnelled real server: the outer
// source (ours) and destination (the server), the GUE port and the largest
// outer IP packet (the interface's MTU). Its layout is the program's struct
// tunnel (bpf/encap.h); IPv4 addresses fill the first 4 bytes of Src and Dst.
type Tunnel struct {
	_       structs.HostLayout
	Src     [16]byte
	Dst     [16]byte
	GUEPort uint16
	MTU     uint16
	Kind    uint8
	Outer6  uint8
	_       [2]byte
}

// NewTunnel returns the Tunnel from src to dst (one family) of kind.
func NewTunnel(kind uint8, src, dst netip.Addr, guePort uint16, mtu int) Tunnel {
	t := Tunnel{Kind: kind, GUEPort: guePort, MTU: uint16(min(mtu, 65535))}
	src, dst = src.Unmap(), dst.Unmap()
	if dst.Is6() {
		t.Outer6 = 1
		t.Src, t.Dst = src.As16(), dst.As16()
	} else {
		s, d := src.As4(), dst.As4()
		copy(t.Src[:], s[:])
		copy(t.Dst[:], d[:])
	}
	return t
}

// Tunnels keeps the steering program's tunnel map (counter slot -> Tunnel)
// equal to what the snapshots say; only changed slots are written. It is
// safe for concurrent use.
type Tunnels struct {
	m     *ebpf.Map
	stats *ebpf.Map
	mu    sync.Mutex
	last  map[uint32]Tunnel
}

// Tunnels returns the dataplane's tunnel map.
func (d *Dataplane) Tunnels() *Tunnels {
	return &Tunnels{m: d.objs.Tunnels, stats: d.objs.TunStats, last: map[uint32]Tunnel{}}
}

// Set makes want the map's contents: slots not in want get kind TunnelNone.
func (t *Tunnels) Set(want map[uint32]Tunnel) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for slot := range t.last {
		if _, ok := want[slot]; !ok {
			if err := t.m.Put(slot, Tunnel{}); err != nil {
				return fmt.Errorf("clear tunnel of counter slot %d: %w", slot, err)
			}
			delete(t.last, slot)
		}
	}
	for slot, v := range want {
		if old, ok := t.last[slot]; ok && old == v {
			continue
		}
		if err := t.m.Put(slot, v); err != nil {
			return fmt.Errorf("set tunnel of counter slot %d (max %d): %w", slot, t.m.MaxEntries()-1, err)
		}
		t.last[slot] = v
	}
	return nil
}

// tunnelStatNames are the fast path's tunnel counters (enum tun_stat).
var tunnelStatNames = []string{"tunnel_encap", "tunnel_too_big", "tunnel_to_socket"}

// Stats returns the fast path's tunnel counters summed over CPUs:
// tunnel_encap (encapsulated, sent with XDP_TX), tunnel_too_big (too long
// once encapsulated: to the pipeline, which answers ICMP too-big) and
// tunnel_to_socket (VLAN tags, padding, GUE over IPv6: to the pipeline).
func (t *Tunnels) Stats() map[string]uint64 {
	out := ReadCounters(t.stats, tunnelStatNames)
	delete(out, "pass")
	return out
}
