package pipeline

import (
	"net/netip"

	"github.com/medialb/medialb/tables"
)

// Process handles one received frame in place: it parses it, looks up the layer-4
// service of its destination (non-first fragments by address and protocol only), picks
// the real server for its source address (persistence, then Maglev) and rewrites the
// Ethernet header: destination MAC = the server's, source MAC = localMAC. IP and L4 bytes
// are left untouched (direct routing).
//
// An ICMP error to a VIP quoting a packet of a layer-4 service (from VIP:port to a
// client, see [ParseICMPError]) goes to the real server that client's own packets go to:
// its service is looked up by the quoted source address, protocol and port, its server
// picked for the quoted destination, the client.
//
// It returns [Forwarded] when the frame was rewritten and should be transmitted; any
// other reason means the frame is to be dropped, and it is then left unmodified.
// Frames whose destination MAC is not localMAC are [NotForUs]: a frame flooded to us for
// another host must not be forwarded a second time. A nil snapshot (no configuration
// yet) makes every parsed frame [NoService]; layer-7 services are [NoService] too, since
// their traffic belongs to the kernel's listeners.
//
// now is the coarse clock in seconds that [tables.Service.Pick] takes; callers read it
// once per batch. Process allocates nothing, takes no lock and is safe for concurrent
// use on different frames.
func Process(snap *tables.Snapshot, localMAC [6]byte, now uint32, frame []byte) Reason {
	var d decision
	return process(snap, localMAC, now, frame, &d)
}

// decision is what process decided for a forwarded frame, for the fast path and the
// counters.
type decision struct {
	svc     *tables.Service
	srv     *tables.Server
	verdict tables.Verdict
	src     netip.Addr // the client
	frag    bool       // a non-first fragment
	icmp    ICMPKind   // an ICMP error about the client's flow, or ICMPNone
}

// process is Process; for a Forwarded frame it also fills d.
func process(snap *tables.Snapshot, localMAC [6]byte, now uint32, frame []byte, d *decision) Reason {
	if len(frame) < ethHeaderLen {
		return MalformedEthernet
	}
	if [6]byte(frame[0:6]) != localMAC {
		return NotForUs
	}
	var p Packet
	r := Parse(frame, &p)
	if r == NotForUs {
		r = ParseICMPError(frame, &p)
		if r == MalformedICMP && !isLayer4VIP(snap, p.Dst) {
			r = NotForUs
		}
	}
	if r != OK {
		return r
	}
	if snap == nil {
		return NoService
	}
	svc, client := classify(snap, &p)
	if svc == nil {
		switch {
		case p.ICMP != ICMPNone:
			return ICMPNoService
		case p.Frag == FragLater:
			return FragmentNoService
		}
		return NoService
	}
	var srv *tables.Server
	var verdict tables.Verdict
	if p.ICMP != ICMPNone {
		srv, verdict = svc.PickQuiet(client, now) // a router's error: no entry for a client we do not know
	} else {
		srv, verdict = svc.Pick(client, now)
	}
	if srv == nil {
		return NoServer
	}
	if !srv.HasMAC {
		return MACUnresolved
	}
	copy(frame[0:6], srv.MAC[:])
	copy(frame[6:12], localMAC[:])
	d.svc, d.srv, d.verdict, d.src, d.frag, d.icmp = svc, srv, verdict, client, p.Frag == FragLater, p.ICMP
	return Forwarded
}

// classify returns the layer-4 service a parsed packet belongs to and the client whose
// real server it goes to, or a nil service. For an ICMP error, the quoted packet went
// from the VIP (p.Src) to the client (p.Dst).
func classify(snap *tables.Snapshot, p *Packet) (*tables.Service, netip.Addr) {
	vip, port, client := p.Dst, p.DstPort, p.Src
	if p.ICMP != ICMPNone {
		vip, port, client = p.Src, p.SrcPort, p.Dst
	}
	var svc *tables.Service
	if p.Frag == FragLater {
		svc = snap.LookupFragment(vip, p.Proto)
	} else {
		svc = snap.Lookup(vip, p.Proto, port)
	}
	if svc == nil || svc.Layer != tables.Layer4 {
		return nil, client
	}
	return svc, client
}

// isLayer4VIP reports whether addr is the address of a layer-4 service (of either
// protocol): the steering program sends malformed ICMP errors to such an address to us,
// to be counted and dropped, and leaves the others to the kernel.
func isLayer4VIP(snap *tables.Snapshot, addr netip.Addr) bool {
	return snap != nil && (snap.LookupFragment(addr, tables.ProtoTCP) != nil ||
		snap.LookupFragment(addr, tables.ProtoUDP) != nil)
}
