package pipeline

import (
	"sync/atomic"

	"golang.org/x/sys/cpu"
)

// Reason says what became of a received frame: forwarded, or why it was dropped.
type Reason uint8

// Reasons. Every received frame is counted under exactly one of them.
const (
	Forwarded         Reason = iota // rewritten and accepted by the TX ring
	MalformedEthernet               // Ethernet header or VLAN tag truncated
	MalformedIPv4                   // IPv4 header truncated, IHL < 5, version or length fields inconsistent
	MalformedIPv6                   // IPv6 header or extension-header chain truncated or inconsistent
	MalformedL4                     // TCP or UDP header truncated or inconsistent
	NotForUs                        // not addressed to our MAC, not IP, not TCP/UDP, or too many VLAN tags
	NoService                       // no layer-4 service on this address, protocol and port
	NoServer                        // the service has no eligible real server and no fallback
	MACUnresolved                   // the chosen server's MAC is not known (fallback without a neighbour entry)
	TXFull                          // forwardable, but the TX ring had no room
	MalformedICMP                   // an ICMP error to a layer-4 VIP whose ICMP header or quoted IP/L4 header is truncated or inconsistent
	ICMPNoService                   // an ICMP error quoting a packet from a VIP, but no layer-4 service has its protocol and source port
	FragmentNoService               // a non-first fragment to a VIP with no layer-4 service for its protocol
	TunnelTooBig                    // tunnelled: too big once encapsulated, and no ICMP too-big is due (IPv4 without DF, an ICMP error)
	TunnelNoRoom                    // tunnelled: the frame has no headroom for the outer headers
	NumReasons                      // number of reasons; not a reason
)

var reasonNames = [NumReasons]string{
	Forwarded:         "forwarded",
	MalformedEthernet: "malformed_ethernet",
	MalformedIPv4:     "malformed_ipv4",
	MalformedIPv6:     "malformed_ipv6",
	MalformedL4:       "malformed_l4",
	NotForUs:          "not_for_us",
	NoService:         "no_service",
	NoServer:          "no_server",
	MACUnresolved:     "mac_unresolved",
	TXFull:            "tx_full",
	MalformedICMP:     "malformed_icmp",
	ICMPNoService:     "icmp_no_service",
	FragmentNoService: "fragment_no_service",
	TunnelTooBig:      "tunnel_too_big",
	TunnelNoRoom:      "tunnel_no_room",
}

// String returns the reason as a metric label value, such as "no_service".
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "invalid"
}

// Malformed reports whether r is one of the Malformed reasons.
func (r Reason) Malformed() bool {
	return (r >= MalformedEthernet && r <= MalformedL4) || r == MalformedICMP
}

// Counters is a point-in-time copy of a worker's counters. The zero value is all zeros.
// Counters of several workers add up with [Counters.Add].
//
// The fields are loaded one by one while the worker runs: a copy taken mid-batch may
// count a batch in Batches but not yet in ByReason, or the other way round.
type Counters struct {
	Batches  uint64             // non-empty receive batches
	ByReason [NumReasons]uint64 // what became of the received frames, by reason
	// Fast path (WorkerOptions.FastPath): decisions sent to the steering program's
	// map, the Update calls (syscalls) that carried them, and failed calls.
	FastPathEntries, FastPathFlushes, FastPathErrors uint64
	// ICMPRouted counts, by kind, the ICMP errors routed to a client's real server
	// (also counted in ByReason[Forwarded] when the TX ring took them).
	ICMPRouted [numICMPKinds]uint64
	// Tunnel counts frames encapsulated to tunnelled real servers and the ICMP
	// too-big errors sent back to clients instead (both also in ByReason[Forwarded]).
	Tunnel TunnelCounts
}

// Received returns the number of frames taken from the RX ring.
func (c Counters) Received() uint64 {
	var n uint64
	for _, v := range c.ByReason {
		n += v
	}
	return n
}

// Forwarded returns the number of frames transmitted.
func (c Counters) Forwarded() uint64 { return c.ByReason[Forwarded] }

// Dropped returns the number of frames not transmitted, for whatever reason.
func (c Counters) Dropped() uint64 { return c.Received() - c.ByReason[Forwarded] }

// Malformed returns the number of frames dropped as malformed (all layers).
func (c Counters) Malformed() uint64 {
	var n uint64
	for r, v := range c.ByReason {
		if Reason(r).Malformed() {
			n += v
		}
	}
	return n
}

// Add returns the sum of c and o.
func (c Counters) Add(o Counters) Counters {
	c.Batches += o.Batches
	c.FastPathEntries += o.FastPathEntries
	c.FastPathFlushes += o.FastPathFlushes
	c.FastPathErrors += o.FastPathErrors
	for i := range c.ICMPRouted {
		c.ICMPRouted[i] += o.ICMPRouted[i]
	}
	c.Tunnel.Encapsulated += o.Tunnel.Encapsulated
	c.Tunnel.TooBigSent += o.Tunnel.TooBigSent
	for i := range c.ByReason {
		c.ByReason[i] += o.ByReason[i]
	}
	return c
}

// Sum adds up the counters of workers.
func Sum(workers ...*Worker) Counters {
	var c Counters
	for _, w := range workers {
		c = c.Add(w.Counters())
	}
	return c
}

// counters is one worker's live counters. The worker is the only writer and adds a
// batch's counts at the end of the batch (a handful of atomic adds per batch, none per
// packet); readers load them atomically. The padding keeps them on cache lines of their
// own, so that the worker's writes do not slow down other workers' data and vice versa.
type counters struct {
	_       cpu.CacheLinePad
	batches atomic.Uint64
	reasons [NumReasons]atomic.Uint64

	fpEntries, fpFlushes, fpErrors atomic.Uint64
	icmp                           [numICMPKinds]atomic.Uint64
	tunEncap, tunTooBig            atomic.Uint64
	srv                            []serverCounter // by tables.Server.Slot
	_                              cpu.CacheLinePad
}

// batchCounts counts one batch, on the worker's stack.
type batchCounts struct {
	reasons [NumReasons]uint32
	icmp    [numICMPKinds]uint32
	tun     [2]uint32 // encapsulated, too-big sent
}

// add adds a batch's counts.
func (c *counters) add(bc *batchCounts) {
	c.batches.Add(1)
	for r, v := range bc.reasons {
		if v != 0 {
			c.reasons[r].Add(uint64(v))
		}
	}
	for k, v := range bc.icmp {
		if v != 0 {
			c.icmp[k].Add(uint64(v))
		}
	}
	if bc.tun != [2]uint32{} {
		c.tunEncap.Add(uint64(bc.tun[0]))
		c.tunTooBig.Add(uint64(bc.tun[1]))
	}
}

// load returns a copy.
func (c *counters) load() Counters {
	var s Counters
	s.Batches = c.batches.Load()
	s.FastPathEntries = c.fpEntries.Load()
	s.FastPathFlushes = c.fpFlushes.Load()
	s.FastPathErrors = c.fpErrors.Load()
	for i := range s.ByReason {
		s.ByReason[i] = c.reasons[i].Load()
	}
	for i := range s.ICMPRouted {
		s.ICMPRouted[i] = c.icmp[i].Load()
	}
	s.Tunnel = TunnelCounts{Encapsulated: c.tunEncap.Load(), TooBigSent: c.tunTooBig.Load()}
	return s
}

// ServerCount is what a layer-4 real server was sent: frames and their bytes
// (Ethernet frame lengths), counted when the TX ring took them.
type ServerCount struct{ Packets, Bytes uint64 }

// serverCounter is one server slot's live counts.
type serverCounter struct{ pkts, bytes atomic.Uint64 }

// batchServers accumulates a batch's per-server counts on the worker's stack: a few
// distinct servers per batch, each added to the live counters once.
type batchServers struct {
	n    int
	slot [8]uint32
	pkts [8]uint32
	byts [8]uint64
}

// add counts one frame of length n for slot; it reports false when the batch
// already holds 8 other servers (the caller then adds it directly).
func (b *batchServers) add(slot uint32, n int) bool {
	for i := 0; i < b.n; i++ {
		if b.slot[i] == slot {
			b.pkts[i]++
			b.byts[i] += uint64(n)
			return true
		}
	}
	if b.n == len(b.slot) {
		return false
	}
	b.slot[b.n], b.pkts[b.n], b.byts[b.n] = slot, 1, uint64(n)
	b.n++
	return true
}

// addServer adds packets and bytes to a server slot's live counters.
func (c *counters) addServer(slot uint32, pkts, bytes uint64) {
	if slot == 0 || int(slot) >= len(c.srv) {
		return
	}
	c.srv[slot].pkts.Add(pkts)
	c.srv[slot].bytes.Add(bytes)
}
