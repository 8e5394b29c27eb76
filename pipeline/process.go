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

// decision is what process decided for a forwarded frame, for the fast path.
type decision struct {
	svc     *tables.Service
	srv     *tables.Server
	verdict tables.Verdict
	src     netip.Addr
	frag    bool // a non-first fragment
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
	if r := Parse(frame, &p); r != OK {
		return r
	}
	if snap == nil {
		return NoService
	}
	var svc *tables.Service
	if p.Frag == FragLater {
		svc = snap.LookupFragment(p.Dst, p.Proto)
	} else {
		svc = snap.Lookup(p.Dst, p.Proto, p.DstPort)
	}
	if svc == nil || svc.Layer != tables.Layer4 {
		return NoService
	}
	srv, verdict := svc.Pick(p.Src, now)
	if srv == nil {
		return NoServer
	}
	if !srv.HasMAC {
		return MACUnresolved
	}
	copy(frame[0:6], srv.MAC[:])
	copy(frame[6:12], localMAC[:])
	d.svc, d.srv, d.verdict, d.src, d.frag = svc, srv, verdict, p.Src, p.Frag == FragLater
	return Forwarded
}
