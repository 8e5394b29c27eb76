package l7

import "github.com/medialb/medialb/tables"

// ServiceStats are the counters of one layer-7 service. Bytes are counted
// when a relay direction wakes, so they lag an active connection by at most
// ten seconds.
type ServiceStats struct {
	Name     string
	Active   int64  // established client connections now (including ones being connected)
	Total    uint64 // client connections accepted
	BytesIn  uint64 // from clients to real servers
	BytesOut uint64 // from real servers to clients
	Rejected uint64 // clients reset because MaxConns was reached
	// RejectedSource counts clients reset because their address had
	// MaxConnsPerSource connections already.
	RejectedSource uint64
	// Exhausted counts clients reset because connecting to a server failed
	// for want of this node's descriptors or ports (not counted against the
	// server; also in NoServer).
	Exhausted uint64
	NoServer  uint64 // clients reset because no server was eligible or every attempt failed
	Servers   []ServerStats
}

// ServerStats are the counters of one real server of a layer-7 service.
type ServerStats struct {
	Name            string
	Active          int64  // established connections now
	Total           uint64 // connections established
	BytesIn         uint64 // from clients to this server
	BytesOut        uint64 // from this server to clients
	ConnectFailures uint64 // refused or timed-out connection attempts (passive failure count)
	FailStreak      uint64 // consecutive connect failures; 0 after a success
}

// Stats returns the counters of every layer-7 service of the current
// snapshot, servers in config order with the fallback server last.
func (p *Proxy) Stats() []ServiceStats {
	snap := p.holder.Load()
	if snap == nil {
		return nil
	}
	var out []ServiceStats
	for _, svc := range snap.Services() {
		if svc.Layer != tables.Layer7 {
			continue
		}
		p.mu.Lock()
		ss := p.services[svc.Name]
		p.mu.Unlock()
		st := ServiceStats{Name: svc.Name}
		servers := svc.Servers
		if svc.Fallback != nil {
			servers = append(servers[:len(servers):len(servers)], svc.Fallback)
		}
		if ss != nil {
			st.Active = ss.active.Load()
			st.Total = ss.total.Load()
			st.BytesIn = ss.bytesIn.Load()
			st.BytesOut = ss.bytesOut.Load()
			st.Rejected = ss.rejected.Load()
			st.RejectedSource = ss.rejectedSource.Load()
			st.Exhausted = ss.exhausted.Load()
			st.NoServer = ss.noServer.Load()
		}
		for _, srv := range servers {
			s := ServerStats{Name: srv.Name}
			if ss != nil {
				ss.mu.Lock()
				r := ss.servers[srv.Name]
				ss.mu.Unlock()
				if r != nil {
					s.Active = r.active.Load()
					s.Total = r.total.Load()
					s.BytesIn = r.bytesIn.Load()
					s.BytesOut = r.bytesOut.Load()
					s.ConnectFailures = r.connectFailures.Load()
					s.FailStreak = r.failStreak.Load()
				}
			}
			st.Servers = append(st.Servers, s)
		}
		out = append(out, st)
	}
	return out
}
