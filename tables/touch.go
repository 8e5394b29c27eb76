package tables

import "net/netip"

// Touch records that client src was seen at seen (the caller's persistence
// clock, as Pick's now) going to the server named server: a client whose
// frames bypass Pick (the steering program's fast path) keeps its persistence
// entry alive this way. The client's own entry for that server (same
// Generation) has its time moved forward, never back; an entry for another
// server, a stale one or none is replaced by server under its current
// Generation. It reports whether the table was written. A service without
// persistence, an unknown server, one that may not keep persistent clients
// (halt, down, no MAC) or a seen older than the timeout do nothing. Touch
// takes no lock and allocates nothing; it scans the servers for the name, so
// it is meant for the control plane.
func (svc *Service) Touch(src netip.Addr, server string, seen, now uint32) bool {
	a := svc.aff
	if a == nil || !src.IsValid() || expired(seen, now, svc.timeout) {
		return false
	}
	var srv *Server
	for _, s := range svc.Servers {
		if s.Name == server {
			srv = s
			break
		}
	}
	if srv == nil || srv.id == 0 || !svc.eligiblePersist(srv) {
		return false
	}
	k0, k1 := addrKey(src)
	b := a.bucketFor(hash128(svc.seed, k0, k1))
	p := b.scan(k0, k1, now, svc.timeout)
	val := packVal(srv.id, srv.Generation)
	if p.kind == kindOwn {
		v := p.view
		if v.val == val {
			if int32(seen-v.t) <= 0 {
				return false
			}
			return b[p.slot].touch(v.seq, seen)
		}
		return b[p.slot].store(v.seq, k0, k1, val, seen, true)
	}
	return a.insert(b, p, k0, k1, val, seen, true)
}

// LastSeen returns when client src was last seen by the persistence table
// and the name of its server, if it has a live entry under the server's
// current Generation. Control plane and tests.
func (svc *Service) LastSeen(src netip.Addr, now uint32) (seen uint32, server string, ok bool) {
	a := svc.aff
	if a == nil || !src.IsValid() {
		return 0, "", false
	}
	k0, k1 := addrKey(src)
	p := a.bucketFor(hash128(svc.seed, k0, k1)).scan(k0, k1, now, svc.timeout)
	if p.kind != kindOwn || expired(p.view.t, now, svc.timeout) {
		return 0, "", false
	}
	id := uint32(p.view.val)
	if id >= uint32(len(svc.byID)) || svc.byID[id] < 0 {
		return 0, "", false
	}
	srv := svc.Servers[svc.byID[id]]
	if srv.Generation != uint32(p.view.val>>32) {
		return 0, "", false
	}
	return p.view.t, srv.Name, true
}
