package tables

import (
	"net/netip"
)

// Entry is one live source-IP persistence entry as an HA pair exchanges it: the
// client, the name of the real server it was given, and how many seconds ago it
// was last seen. Ages, not times, because each node's persistence clock starts
// at its own boot.
type Entry struct {
	Client netip.Addr
	Server string
	Age    uint32
}

// Export calls fn for every live persistence entry of the service (not expired
// at now, recorded under the current Generation of a server of this snapshot)
// last seen at most maxAge seconds ago, until fn returns false. It scans the
// whole table: control plane only. A service without persistence has no entries.
func (svc *Service) Export(now, maxAge uint32, fn func(Entry) bool) {
	a := svc.aff
	if a == nil {
		return
	}
	for bi := range a.buckets {
		b := &a.buckets[bi]
		for i := range b {
			v, ok := b[i].load()
			if !ok || v.val == 0 || expired(v.t, now, svc.timeout) {
				continue
			}
			age := uint32(max(int32(now-v.t), 0))
			if age > maxAge {
				continue
			}
			id := uint32(v.val)
			if id >= uint32(len(svc.byID)) || svc.byID[id] < 0 {
				continue
			}
			srv := svc.Servers[svc.byID[id]]
			if srv.Generation != uint32(v.val>>32) {
				continue
			}
			if !fn(Entry{Client: keyAddr(v.k0, v.k1), Server: srv.Name, Age: age}) {
				return
			}
		}
	}
}

// Import records entries (from the peer's Export) in the service's persistence
// table as if their clients had been seen age seconds before now, under the
// named server's current Generation. An entry for a server this snapshot does
// not have, or older than the persistence timeout, is skipped; a client whose
// own entry here was seen more recently keeps it. It returns how many entries
// were recorded. Import takes no lock and may run while workers Pick.
func (svc *Service) Import(entries []Entry, now uint32) int {
	a := svc.aff
	if a == nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if e.Age > svc.timeout || !e.Client.IsValid() {
			continue
		}
		var srv *Server
		for _, s := range svc.Servers {
			if s.Name == e.Server {
				srv = s
				break
			}
		}
		if srv == nil || srv.id == 0 {
			continue
		}
		t := now - e.Age
		k0, k1 := addrKey(e.Client)
		b := a.bucketFor(hash128(svc.seed, k0, k1))
		p := b.scan(k0, k1, now, svc.timeout)
		val := packVal(srv.id, srv.Generation)
		if p.kind == kindOwn {
			v := p.view
			if !expired(v.t, now, svc.timeout) && int32(v.t-t) >= 0 {
				continue // ours is as recent or more
			}
			if b[p.slot].store(v.seq, k0, k1, val, t, true) {
				n++
			}
			continue
		}
		if a.insert(b, p, k0, k1, val, t, true) {
			n++
		}
	}
	return n
}

// keyAddr is the inverse of addrKey: IPv4-mapped keys give IPv4 addresses.
func keyAddr(k0, k1 uint64) netip.Addr {
	var b [16]byte
	for i := range 8 {
		b[i] = byte(k0 >> (8 * i))
		b[8+i] = byte(k1 >> (8 * i))
	}
	return netip.AddrFrom16(b).Unmap()
}
