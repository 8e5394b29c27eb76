package tables

import "net/netip"

// PickQuiet is Pick for a packet that is not the client's own (an ICMP error
// about the client's flow, sent by a router): the client's persistence entry,
// if it has a valid one, gives its server (VerdictPersist), else Maglev's
// choice does (VerdictNew), but nothing is written: no entry is created for a
// client the table does not know, and a known one is neither refreshed nor
// confirmed (a stream of forged errors cannot keep a client alive or fill the
// table).
func (svc *Service) PickQuiet(src netip.Addr, now uint32) (*Server, Verdict) {
	k0, k1 := addrKey(src)
	h := hash128(svc.seed, k0, k1)
	if a := svc.aff; a != nil {
		p := a.bucketFor(h).scan(k0, k1, now, svc.timeout)
		if v := p.view; p.kind == kindOwn && !expired(v.t, now, svc.timeout) {
			if id := uint32(v.val); id < uint32(len(svc.byID)) {
				if i := svc.byID[id]; i >= 0 {
					srv := svc.Servers[i]
					if srv.Generation == uint32(v.val>>32) && svc.eligiblePersist(srv) {
						return srv, VerdictPersist
					}
				}
			}
		}
	}
	return svc.pickNew(h)
}
