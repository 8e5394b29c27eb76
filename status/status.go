// Package status builds the System Overview the REST API and the WebUI show
// (api.Overview) from what the running parts report, as one pure function:
// the daemon gathers the inputs, [Overview] joins them, and the join is tested
// without a running node.
package status

import (
	"time"

	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/control"
	"github.com/medialb/medialb/health"
	"github.com/medialb/medialb/l7"
	"github.com/medialb/medialb/tables"
)

// Inputs are the sources of an overview, each as its owner reports it.
type Inputs struct {
	Node   string    // node.name
	Time   time.Time // when the overview is taken
	HA     *api.HA   // nil without HA
	BGP    *api.BGP  // nil without BGP
	Config *config.Config
	// Snapshot is the snapshot in force; a service of Config that is not in
	// it yet is left out.
	Snapshot *tables.Snapshot
	Now      uint32 // the persistence clock (tables.Now)
	// Admin are the operators' states (a missing server is online) and Health
	// the last health verdicts, as control.Controller.States returns them.
	Admin  map[tables.Key]tables.State
	Health map[tables.Key]control.Health
	// Checks are the health monitor's targets (health.Monitor.Statuses).
	Checks map[tables.Key]health.Status
	// L7 are the layer-7 proxy's counters (l7.Proxy.Stats).
	L7 []l7.ServiceStats
	// L4Count returns the frames and bytes the layer-4 dataplane sent to the real
	// server with a counter slot (tables.Server.Slot); nil: none counted.
	L4Count func(slot uint32) (packets, bytes uint64)
	// Panic are the services' panic states (control.Controller.Panic), by name.
	Panic map[string]control.PanicStatus
	// Feedback are the load agents' answers (control.Controller.FeedbackStates).
	Feedback map[tables.Key]control.Feedback
	// Problems are the findings of the real-server checks (realserver.Watcher.Problems).
	Problems map[tables.Key][]string
}

// Overview joins in into the System Overview: the services of the
// configuration in its order, each with its real servers' effective state,
// operator state, health, connections, bytes and persistence entries.
func Overview(in Inputs) api.Overview {
	l7svc := map[string]l7.ServiceStats{}
	l7srv := map[tables.Key]l7.ServerStats{}
	for _, st := range in.L7 {
		l7svc[st.Name] = st
		for _, ss := range st.Servers {
			l7srv[tables.Key{Service: st.Name, Server: ss.Name}] = ss
		}
	}
	ov := api.Overview{Node: in.Node, Time: in.Time, HA: in.HA, BGP: in.BGP}
	if in.Config == nil || in.Snapshot == nil {
		return ov
	}
	for i := range in.Config.Services {
		cs := &in.Config.Services[i]
		ts := in.Snapshot.Service(cs.Name)
		if ts == nil {
			continue
		}
		ov.Services = append(ov.Services, service(in, cs, ts, l7svc[cs.Name], l7srv))
	}
	return ov
}

// service is the overview of one service.
func service(in Inputs, cs *config.Service, ts *tables.Service, st l7.ServiceStats, l7srv map[tables.Key]l7.ServerStats) api.Service {
	persist := cs.Persistence.Mode == config.PersistSourceIP
	as := api.Service{
		Name: cs.Name, Address: cs.Address.String(), Ports: cs.Ports.String(), Layer: int(cs.Layer),
		Protocol: cs.Protocol.String(), Forwarding: string(cs.Forwarding), Persistence: string(cs.Persistence.Mode),
		Connections: st.Active,
		Bytes:       st.BytesIn + st.BytesOut,
	}
	if cs.Layer == config.Layer7 {
		as.Forwarding = "proxy"
	}
	if persist {
		as.Persistence += " " + cs.Persistence.Timeout.String()
	}
	aff := ts.AffinityStats()
	as.PersistEvictions, as.PersistRefused = aff.Evictions, aff.Refused
	if ps := in.Panic[cs.Name]; ps.Count > 0 {
		as.Panic, as.Panics = ps.Active, ps.Count
		since := ps.Since.UTC()
		as.PanicSince = &since
	}
	var clients []int // by server, one scan of the persistence table for all
	if persist {
		clients = ts.ActiveClientsByServer(in.Now)
	}
	for i, srv := range ts.Servers {
		rs := realServer(in, tables.Key{Service: cs.Name, Server: srv.Name}, srv, l7srv)
		if c := cs.RealServer(srv.Name); c != nil {
			rs.ConfiguredWeight = c.Weight
		}
		if i < len(clients) {
			rs.ActiveClients = int64(clients[i])
			as.ActiveClients += rs.ActiveClients
		}
		if cs.Layer == config.Layer4 {
			rs.Forwarding = string(config.DirectRouting)
			if srv.Encap != tables.EncapNone {
				rs.Forwarding, rs.Tunnel = string(config.Tunnel), srv.Encap.String()
			}
			// Direct routing never sees the replies, so connections are not
			// tracked: the persistence entries stand for them, as for the service.
			rs.Connections = rs.ActiveClients
			// Frames and bytes sent to the server (client to server only: the
			// replies bypass us), the pipeline's and the XDP fast path's.
			if in.L4Count != nil {
				rs.Packets, rs.Bytes = in.L4Count(srv.Slot)
				as.Packets += rs.Packets
				as.Bytes += rs.Bytes
			}
		}
		as.RealServers = append(as.RealServers, rs)
	}
	if cs.Layer == config.Layer4 {
		as.Connections = as.ActiveClients
	}
	as.State = api.ServiceState(as.RealServers)
	if as.State == api.ServiceDown && ts.Fallback != nil {
		as.State = "fallback"
	}
	return as
}

// realServer is the overview of one real server, without its persistence
// entries.
func realServer(in Inputs, k tables.Key, srv *tables.Server, l7srv map[tables.Key]l7.ServerStats) api.RealServer {
	admin, ok := in.Admin[k]
	if !ok {
		admin = tables.StateOnline
	}
	h := in.Health[k]
	rs := api.RealServer{
		Name: srv.Name, Address: srv.Addr.String(), Port: srv.Port, Weight: int(srv.Weight),
		State: srv.State.String(), Admin: admin.String(),
		Health: "unknown", HealthReason: h.Reason,
		Connections: l7srv[k].Active,
		Bytes:       l7srv[k].BytesIn + l7srv[k].BytesOut,
	}
	if h.Checked {
		rs.Health = map[bool]string{true: "up", false: "down"}[h.Up]
	}
	if st, ok := in.Checks[k]; ok {
		rs.HealthCheckSeconds = st.LastResult.Duration.Seconds()
	}
	if fb, ok := in.Feedback[k]; ok {
		rs.Feedback = &api.Feedback{Percent: fb.Percent, Agent: fb.Agent.String(), Answer: fb.Answer, Error: fb.Error}
		if !fb.AnsweredAt.IsZero() {
			rs.Feedback.AnsweredAt = fb.AnsweredAt.UTC().Format(time.RFC3339)
		}
	}
	rs.Problems = append([]string{}, in.Problems[k]...)
	return rs
}
