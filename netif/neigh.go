package netif

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/vishvananda/netlink"
)

// Neighbors keeps the MAC addresses of a set of wanted addresses (the layer-4 real
// servers) current from the kernel's neighbour table on one interface: a netlink
// subscription delivers every change, and an address without a usable entry is resolved
// by asking the kernel to probe it (a neighbour update with NTF_USE, which sends ARP or
// neighbour solicitations), never guessed. Neighbors is safe for concurrent use.
type Neighbors struct {
	link     netlink.Link
	log      zerolog.Logger
	onChange func()

	mu       sync.Mutex
	want     map[netip.Addr]bool
	via      map[netip.Addr]tunnelRoute // tunnelled servers (nexthop.go)
	macs     map[netip.Addr][6]byte
	reported map[netip.Addr]bool      // "unresolved" already logged
	missing  map[netip.Addr]time.Time // since when a wanted address has had no MAC
	kick     chan struct{}
}

// ResolveInterval is how often unresolved wanted addresses are probed again.
const ResolveInterval = time.Second

// WatchNeighbors starts watching ifname's neighbour table until ctx ends. onChange is
// called (from the watcher's goroutine, without locks held) whenever the MAC of a wanted
// address appears, changes or goes away.
func WatchNeighbors(ctx context.Context, ifname string, log zerolog.Logger, onChange func()) (*Neighbors, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("watch neighbours: find interface %s: %w", ifname, err)
	}
	n := &Neighbors{
		link: link, log: log, onChange: onChange,
		want: map[netip.Addr]bool{}, macs: map[netip.Addr][6]byte{},
		reported: map[netip.Addr]bool{}, missing: map[netip.Addr]time.Time{}, kick: make(chan struct{}, 1),
	}
	updates, err := n.subscribe(ctx)
	if err != nil {
		return nil, err
	}
	go n.loop(ctx, updates)
	return n, nil
}

// Want sets the addresses whose MACs are needed; missing ones are resolved at once.
func (n *Neighbors) Want(addrs []netip.Addr) {
	n.mu.Lock()
	n.want = make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		n.want[a.Unmap()] = true
	}
	for _, r := range n.via {
		n.want[r.via] = true // WantTunnels' next hops stay wanted
	}
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// WaitResolved waits up to timeout for every wanted address to have a MAC and returns
// the ones still missing.
func (n *Neighbors) WaitResolved(ctx context.Context, timeout time.Duration) []netip.Addr {
	deadline := time.Now().Add(timeout)
	for {
		n.mu.Lock()
		var missing []netip.Addr
		for a := range n.want {
			if _, ok := n.macs[a]; !ok {
				missing = append(missing, a)
			}
		}
		n.mu.Unlock()
		if len(missing) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return missing
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// MAC returns the current MAC of addr and whether it is known.
func (n *Neighbors) MAC(addr netip.Addr) ([6]byte, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	m, ok := n.macs[addr.Unmap()]
	return m, ok
}

// subscribe opens a neighbour subscription that ends with ctx. Existing entries are
// not dumped through it (reread lists them), because the combined dump it would
// otherwise make (AF_UNSPEC then AF_BRIDGE) ended the subscription with EAGAIN in
// network namespaces here.
func (n *Neighbors) subscribe(ctx context.Context) (<-chan netlink.NeighUpdate, error) {
	updates := make(chan netlink.NeighUpdate, 256)
	done := make(chan struct{})
	go func() {
		<-ctx.Done()
		close(done)
	}()
	err := netlink.NeighSubscribeWithOptions(updates, done, netlink.NeighSubscribeOptions{
		ErrorCallback: func(err error) {
			if ctx.Err() != nil {
				return // closed on purpose
			}
			n.log.Warn().Err(err).Str("interface", n.link.Attrs().Name).Msg("neighbour subscription ended; resubscribing, MACs re-read every second meanwhile")
		},
	})
	if err != nil {
		return nil, fmt.Errorf("watch neighbours of %s: subscribe: %w", n.link.Attrs().Name, err)
	}
	return updates, nil
}

func (n *Neighbors) loop(ctx context.Context, updates <-chan netlink.NeighUpdate) {
	t := time.NewTicker(ResolveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case u, ok := <-updates:
			if !ok {
				updates = nil // resubscribed on the next tick
				continue
			}
			if n.apply(u) && n.onChange != nil {
				n.onChange()
			}
		case <-n.kick:
			if n.reread() && n.onChange != nil {
				n.onChange()
			}
			n.resolveMissing()
		case <-t.C:
			if updates == nil && ctx.Err() == nil {
				updates, _ = n.subscribe(ctx)
			}
			if n.reread() && n.onChange != nil {
				n.onChange()
			}
			n.resolveMissing()
		}
	}
}

// usable reports whether an entry's link-layer address can be trusted for forwarding.
func usable(state int) bool {
	return state&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0
}

// apply records one update and reports whether a wanted MAC changed.
func (n *Neighbors) apply(u netlink.NeighUpdate) bool {
	if u.LinkIndex != n.link.Attrs().Index {
		return false
	}
	addr, ok := netip.AddrFromSlice(u.IP)
	if !ok {
		return false
	}
	addr = addr.Unmap()
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.want[addr] {
		return false
	}
	old, had := n.macs[addr]
	switch {
	case u.Type == syscall.RTM_DELNEIGH:
		// The kernel garbage-collected the entry; the MAC is still the last one seen.
		// Keep it and re-resolve, so a silent server is not dropped from service.
		go n.resolve(addr)
		return false
	case u.State&netlink.NUD_FAILED != 0:
		if had {
			delete(n.macs, addr)
			n.log.Warn().Str("address", addr.String()).Msg("neighbour resolution failed; real server not picked until it answers ARP/ND")
			return true
		}
		return false
	case usable(u.State) && len(u.HardwareAddr) == 6:
		var m [6]byte
		copy(m[:], u.HardwareAddr)
		if had && m == old {
			return false
		}
		n.macs[addr] = m
		delete(n.reported, addr)
		n.log.Info().Str("address", addr.String()).Str("mac", net.HardwareAddr(m[:]).String()).Msg("real server MAC learned")
		return true
	}
	return false
}

// reread lists the neighbour table (a safety net for a lost subscription message).
func (n *Neighbors) reread() bool {
	changed := false
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		list, err := netlink.NeighList(n.link.Attrs().Index, fam)
		if err != nil {
			continue
		}
		for _, e := range list {
			if usable(e.State) && len(e.HardwareAddr) == 6 {
				if n.apply(netlink.NeighUpdate{Type: syscall.RTM_NEWNEIGH, Neigh: e}) {
					changed = true
				}
			}
		}
	}
	return changed
}

func (n *Neighbors) resolveMissing() {
	n.mu.Lock()
	var missing []netip.Addr
	now := time.Now()
	for a := range n.want {
		if _, ok := n.macs[a]; ok {
			delete(n.missing, a)
			continue
		}
		missing = append(missing, a)
		if _, ok := n.missing[a]; !ok {
			n.missing[a] = now
		}
		// A MAC is normally learned within milliseconds; say so only when it is not.
		if !n.reported[a] && now.Sub(n.missing[a]) >= ResolveInterval {
			n.reported[a] = true
			n.log.Warn().Str("address", a.String()).Str("interface", n.link.Attrs().Name).
				Msg("real server MAC unresolved; resolving, not picked until known")
		}
	}
	n.mu.Unlock()
	for _, a := range missing {
		n.resolve(a)
	}
}

// resolve asks the kernel to resolve addr (NTF_USE triggers ARP or neighbour
// solicitation, as `ip neigh replace ADDR dev IF use` does).
func (n *Neighbors) resolve(addr netip.Addr) {
	err := netlink.NeighSet(&netlink.Neigh{
		LinkIndex: n.link.Attrs().Index,
		Family:    family(addr),
		IP:        addr.AsSlice(),
		Flags:     netlink.NTF_USE,
	})
	if err != nil {
		n.log.Debug().Err(err).Str("address", addr.String()).Msg("neighbour probe request failed")
	}
}

func family(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}
