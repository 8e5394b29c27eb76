package tables

import "net/netip"

// eligibleNew reports whether srv may take new clients.
func (svc *Service) eligibleNew(srv *Server) bool {
	return srv.State == StateOnline && srv.Weight > 0 && (svc.Layer == Layer7 || srv.HasMAC)
}

// eligiblePersist reports whether srv may keep its persistent clients.
func (svc *Service) eligiblePersist(srv *Server) bool {
	return srv.State.InService() && (svc.Layer == Layer7 || srv.HasMAC)
}

// Pick chooses the real server for a client source address. now is a coarse
// clock in seconds (monotonic; the caller reads it once per batch). It is safe
// for concurrent use by many goroutines, takes no lock and allocates nothing.
//
// An affinity entry for src that has not expired, whose server is in this
// snapshot (by name) with the same Generation, online or drain and (L4) with
// a MAC, gives that server (VerdictPersist) and refreshes the entry's time.
// Otherwise Maglev picks among the servers that are online with a weight
// above 0 and (L4) a MAC, and the choice is recorded (VerdictNew); with no
// such server, the Fallback (VerdictFallback) or nil (VerdictNoServer). The
// same client keeps its server across all ports and both protocols of the
// service.
func (svc *Service) Pick(src netip.Addr, now uint32) (*Server, Verdict) {
	return svc.pick(src, now, nil)
}

// PickLeast is Pick for weighted least-connection (layer 7, scheduler wlc):
// a client with an affinity entry keeps its server as with Pick; a new
// client goes to the eligible server with the fewest connections per unit
// of weight, load(server) being its connections now, and the choice is
// recorded. Ties go to the first such server from a place that the client's
// hash decides, so that simultaneous new clients spread. It calls load once
// per eligible server.
func (svc *Service) PickLeast(src netip.Addr, now uint32, load func(*Server) int64) (*Server, Verdict) {
	return svc.pick(src, now, load)
}

// pick is Pick, with new clients chosen by load (least connection) when
// load is not nil, else by Maglev.
func (svc *Service) pick(src netip.Addr, now uint32, load func(*Server) int64) (*Server, Verdict) {
	k0, k1 := addrKey(src)
	h := hash128(svc.seed, k0, k1)
	a := svc.aff
	if a == nil {
		return svc.choose(h, load)
	}
	b := a.bucketFor(h)
	p := b.scan(k0, k1, now, svc.timeout)
	if v := p.view; p.kind == kindOwn && !expired(v.t, now, svc.timeout) {
		id := uint32(v.val)
		if id < uint32(len(svc.byID)) {
			if i := svc.byID[id]; i >= 0 {
				srv := svc.Servers[i]
				if srv.Generation == uint32(v.val>>32) && svc.eligiblePersist(srv) {
					// Seen again: the client is confirmed (established), and its time
					// moves forward, never back.
					if int32(now-v.t) > 0 {
						b[p.slot].touch(v.seq, now)
					} else if !v.confirmed {
						b[p.slot].touch(v.seq, v.t)
					}
					return srv, VerdictPersist
				}
			}
		}
	}
	srv, verdict := svc.choose(h, load)
	if verdict == VerdictNew {
		a.insert(b, p, k0, k1, packVal(srv.id, srv.Generation), now, false)
	}
	return srv, verdict
}

// choose is the choice for a new client with hash h: by least connection
// with load, else by Maglev.
func (svc *Service) choose(h uint64, load func(*Server) int64) (*Server, Verdict) {
	if load != nil && len(svc.table) > 0 {
		return svc.leastLoaded(h, load), VerdictNew
	}
	return svc.pickNew(h)
}

// pickNew is the Maglev choice for client hash h.
func (svc *Service) pickNew(h uint64) (*Server, Verdict) {
	if len(svc.table) == 0 {
		if svc.Fallback != nil {
			return svc.Fallback, VerdictFallback
		}
		return nil, VerdictNoServer
	}
	return svc.Servers[svc.table[h%uint64(len(svc.table))]], VerdictNew
}

// AffinityStats returns the counters of the service's persistence table
// (zero when persistence is off). The table is shared by every snapshot that
// carries this service name, so the counters span them.
func (svc *Service) AffinityStats() AffinityStats {
	if svc.aff == nil {
		return AffinityStats{}
	}
	return svc.aff.stats()
}

// ActiveClients returns the number of live persistence entries for server
// (recorded under its current Generation and not expired at now). It scans
// the whole table: control plane only.
func (svc *Service) ActiveClients(server *Server, now uint32) int {
	if svc.aff == nil || server == nil || server.Index < 0 || server.id == 0 {
		return 0
	}
	return svc.aff.count(packVal(server.id, server.Generation), now, svc.timeout)
}

// EligibleServers returns how many servers take new clients (are in the
// Maglev table).
func (svc *Service) EligibleServers() int { return svc.eligible }

// leastLoaded returns the eligible server with the smallest load/weight,
// starting the scan at a place given by h. There is one: the Maglev table
// is not empty.
func (svc *Service) leastLoaded(h uint64, load func(*Server) int64) *Server {
	var best *Server
	var bestLoad int64
	n := len(svc.Servers)
	start := int(h % uint64(n))
	for j := range n {
		srv := svc.Servers[(start+j)%n]
		if !svc.eligibleNew(srv) {
			continue
		}
		l := load(srv)
		// l/w < bestLoad/bestW, without division.
		if best == nil || l*int64(best.Weight) < bestLoad*int64(srv.Weight) {
			best, bestLoad = srv, l
		}
	}
	return best
}
