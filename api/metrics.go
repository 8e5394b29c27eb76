package api

import (
	"maps"
	"runtime"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "medialb"

// Real server and service states, one gauge series each.
var (
	serverStates  = []string{"online", "drain", "halt", "down"}
	serviceStates = []string{ServiceOnline, ServiceDegraded, ServiceDown}
	haRoles       = []string{"master", "backup"}
)

// collector turns the Source's overview and metrics into Prometheus metrics at
// scrape time; it keeps no counters of its own.
type collector struct {
	src     Source
	refused atomic.Uint64 // API connections closed at accept (limitListener)
	bgp     bgpDescs      // BGP sessions and routes (node.go)

	buildInfo *prometheus.Desc
	version   string
	revision  string

	svcState, svcConns, svcClients, svcPackets, svcBytes                                   *prometheus.Desc
	svcEvictions, svcRefused, svcPanic, svcPanics                                          *prometheus.Desc
	rsState, rsWeight, rsConns, rsClients, rsPackets, rsBytes                              *prometheus.Desc
	rsHealthUp, rsHealthSeconds                                                            *prometheus.Desc
	rsConfWeight, rsFeedback, rsFeedbackAge, rsProblems                                    *prometheus.Desc
	forwarded, fastpath, fpDecisions, drops, reloads, lastReloadOK, lastReloadSuccessStamp *prometheus.Desc
	haRole, icmpRouted, txCompleted, txInvalid, ifTXDropped                                *prometheus.Desc
	haPeerUp, haFailovers, haLastFailover, haSync, haConfigSync                            *prometheus.Desc
	healthLocal, l7Refused, haSyncRefused, apiRefused                                      *prometheus.Desc
}

func newCollector(src Source, version string) *collector {
	revision := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if version == "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	if version == "" {
		version = "unknown"
	}
	svc := []string{"service"}
	rs := []string{"service", "server"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
	}
	return &collector{
		src: src, version: version, revision: revision, bgp: newBGPDescs(d),
		buildInfo: d("build_info", "Build information of the running medialb; always 1.", "version", "revision", "goversion"),

		svcState:   d("service_state", "Virtual service state: 1 for the current one of online, degraded, down.", "service", "state"),
		svcConns:   d("service_connections", "Established layer-7 client connections of a virtual service.", svc...),
		svcClients: d("service_active_clients", "Source-IP persistence entries (clients) of a virtual service.", svc...),
		svcPackets: d("service_packets_total", "Packets forwarded for a virtual service by the layer-4 dataplane.", svc...),
		svcBytes:   d("service_bytes_total", "Bytes forwarded for a virtual service, both directions.", svc...),
		svcEvictions: d("service_persistence_evictions_total",
			"Live persistence entries of a virtual service overwritten for a new client (unconfirmed ones first, established ones only when idle).", svc...),
		svcPanic: d("service_panic",
			"1 while the panic threshold keeps real servers of a virtual service in service although their health checks fail without an answer (the node suspects itself).", svc...),
		svcPanics: d("service_panics_total", "Panics of a virtual service: more than panic_threshold of its real servers stopped answering health checks at once.", svc...),
		svcRefused: d("service_persistence_refused_total",
			"New clients of a virtual service not recorded because their bucket held only active established clients (a flood of new sources).", svc...),

		rsState:         d("real_server_state", "Real server state: 1 for the current one of online, drain, halt, down.", "service", "server", "state"),
		rsWeight:        d("real_server_weight", "Effective weight of a real server: the configured one scaled by its feedback agent and a slow start.", rs...),
		rsConfWeight:    d("real_server_configured_weight", "Configured weight of a real server.", rs...),
		rsFeedback:      d("real_server_feedback_percent", "Share of the configured weight the real server's feedback agent asked for and that is in force.", rs...),
		rsFeedbackAge:   d("real_server_feedback_last_answer_timestamp_seconds", "When the real server's feedback agent last answered, in seconds since the epoch.", rs...),
		rsProblems:      d("real_server_problems", "Setup problems found on a real server (the direct-routing ARP problem, say); 0 when none.", rs...),
		rsConns:         d("real_server_connections", "Established layer-7 connections to a real server.", rs...),
		rsClients:       d("real_server_active_clients", "Source-IP persistence entries (clients) pinned to a real server.", rs...),
		rsPackets:       d("real_server_packets_total", "Packets forwarded to a real server by the layer-4 dataplane.", rs...),
		rsBytes:         d("real_server_bytes_total", "Bytes forwarded to and from a real server.", rs...),
		rsHealthUp:      d("real_server_health_check_up", "Result of the last health check: 1 passed, 0 failed; absent before the first check.", rs...),
		rsHealthSeconds: d("real_server_health_check_duration_seconds", "How long the last health check of a real server took.", rs...),

		forwarded: d("dataplane_forwarded_packets_total",
			"Frames the layer-4 pipeline put on the AF_XDP TX ring; the kernel may still refuse or drop some (see dataplane_tx_completed_packets_total, dataplane_tx_invalid_total, interface_tx_dropped_total)."),
		txCompleted: d("dataplane_tx_completed_packets_total", "Frames of the layer-4 pipeline the kernel reported sent (AF_XDP completion rings)."),
		txInvalid:   d("dataplane_tx_invalid_total", "TX descriptors of the layer-4 pipeline the kernel refused."),
		ifTXDropped: d("interface_tx_dropped_total", "The node interface's tx_dropped counter: frames its driver dropped (the pipeline's and the kernel's)."),
		fastpath:    d("dataplane_fastpath_packets_total", "Frames of clients with a decided server that the XDP steering program forwarded itself (XDP_TX), without the AF_XDP pipeline."),
		drops:       d("dataplane_dropped_packets_total", "Frames the layer-4 dataplane dropped, by reason.", "reason"),
		fpDecisions: d("dataplane_fastpath_decisions_total",
			"Decisions of the layer-4 pipeline for the XDP fast-path map, by result: recorded; refused_full (the map was full: the client stays on the pipeline, no decision is ever evicted for it); expired (idle, or made under an older configuration, and deleted).", "result"),
		icmpRouted: d("dataplane_icmp_errors_routed_total",
			"ICMP errors to a VIP about a direct-routing flow (frag needed / packet too big, unreachable, time exceeded, parameter problem) sent to the client's real server, by kind.", "kind"),
		reloads:                d("config_reloads_total", "Configuration reloads (SIGHUP and API), by result.", "result"),
		lastReloadOK:           d("config_last_reload_successful", "Whether the last configuration reload succeeded (1) or was refused (0)."),
		lastReloadSuccessStamp: d("config_last_reload_success_timestamp_seconds", "When the configuration in force was loaded, in seconds since the epoch."),
		haRole:                 d("ha_role", "HA role of this node: 1 for the current one of master, backup.", "role"),
		haPeerUp:               d("ha_peer_reachable", "Whether this node hears its HA peer (1) or not (0)."),
		haFailovers:            d("ha_failovers_total", "Role changes of this node to or from master since it started."),
		haLastFailover:         d("ha_last_failover_timestamp_seconds", "When this node last became or stopped being master, in seconds since the epoch."),
		haSync:                 d("ha_sync_entries_total", "Persistence entries exchanged with the HA peer, by direction.", "direction"),
		haConfigSync:           d("ha_config_in_sync", "On the primary: whether the peer runs this node's virtual_services (1) or not, or not yet known (0)."),
		healthLocal:            d("health_check_local_errors_total", "Health checks not made because this node was out of file descriptors, ports or buffers (EMFILE, ENFILE, EADDRNOTAVAIL, ENOBUFS); the servers kept their last state."),
		l7Refused:              d("l7_refused_connections_total", "Layer-7 clients closed at accept, by reason: max_connections, max_connections_per_source, out_of_resources (this node out of descriptors or ports when connecting to a server).", "service", "reason"),
		apiRefused:             d("api_refused_connections_total", "Connections to the API closed at accept: over 256 open, or over 32 from one client address (IPv6: /64)."),
		haSyncRefused:          d("ha_sync_refused_connections_total", "Connections to the HA sync port closed at accept: not from ha.peer, or too many waiting for authentication."),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.buildInfo,
		c.svcState, c.svcConns, c.svcClients, c.svcPackets, c.svcBytes, c.svcEvictions, c.svcRefused, c.svcPanic, c.svcPanics,
		c.rsState, c.rsWeight, c.rsConns, c.rsClients, c.rsPackets, c.rsBytes, c.rsHealthUp, c.rsHealthSeconds,
		c.rsConfWeight, c.rsFeedback, c.rsFeedbackAge, c.rsProblems,
		c.forwarded, c.fastpath, c.fpDecisions, c.drops, c.icmpRouted, c.txCompleted, c.txInvalid, c.ifTXDropped, c.reloads, c.lastReloadOK, c.lastReloadSuccessStamp, c.haRole,
		c.haPeerUp, c.haFailovers, c.haLastFailover, c.haSync, c.haConfigSync,
		c.healthLocal, c.l7Refused, c.haSyncRefused, c.apiRefused,
	} {
		ch <- d
	}
	c.bgp.describe(ch)
}

// Collect implements prometheus.Collector: it reads the Source once per scrape.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.buildInfo, 1, c.version, c.revision, runtime.Version())

	ov := c.src.Overview()
	for _, svc := range ov.Services {
		state := svc.State
		if state == "" {
			state = ServiceState(svc.RealServers)
		}
		for _, st := range serviceStates {
			gauge(c.svcState, b2f(st == state), svc.Name, st)
		}
		gauge(c.svcConns, float64(svc.Connections), svc.Name)
		gauge(c.svcClients, float64(svc.ActiveClients), svc.Name)
		counter(c.svcPackets, svc.Packets, svc.Name)
		counter(c.svcBytes, svc.Bytes, svc.Name)
		counter(c.svcEvictions, svc.PersistEvictions, svc.Name)
		counter(c.svcRefused, svc.PersistRefused, svc.Name)
		gauge(c.svcPanic, b2f(svc.Panic), svc.Name)
		counter(c.svcPanics, svc.Panics, svc.Name)
		for _, rs := range svc.RealServers {
			for _, st := range serverStates {
				gauge(c.rsState, b2f(st == rs.State), svc.Name, rs.Name, st)
			}
			gauge(c.rsWeight, float64(rs.Weight), svc.Name, rs.Name)
			gauge(c.rsConfWeight, float64(rs.ConfiguredWeight), svc.Name, rs.Name)
			gauge(c.rsProblems, float64(len(rs.Problems)), svc.Name, rs.Name)
			if fb := rs.Feedback; fb != nil {
				gauge(c.rsFeedback, float64(fb.Percent), svc.Name, rs.Name)
				if at, err := time.Parse(time.RFC3339, fb.AnsweredAt); err == nil {
					gauge(c.rsFeedbackAge, float64(at.Unix()), svc.Name, rs.Name)
				}
			}
			gauge(c.rsConns, float64(rs.Connections), svc.Name, rs.Name)
			gauge(c.rsClients, float64(rs.ActiveClients), svc.Name, rs.Name)
			counter(c.rsPackets, rs.Packets, svc.Name, rs.Name)
			counter(c.rsBytes, rs.Bytes, svc.Name, rs.Name)
			switch rs.Health {
			case "up", "down":
				gauge(c.rsHealthUp, b2f(rs.Health == "up"), svc.Name, rs.Name)
				gauge(c.rsHealthSeconds, rs.HealthCheckSeconds, svc.Name, rs.Name)
			}
		}
	}
	if ov.HA != nil {
		for _, r := range haRoles {
			gauge(c.haRole, b2f(r == ov.HA.Role), r)
		}
		gauge(c.haPeerUp, b2f(ov.HA.PeerState != "" && ov.HA.PeerState != "unreachable"))
		counter(c.haFailovers, ov.HA.Failovers)
		if ov.HA.LastFailover != nil {
			gauge(c.haLastFailover, float64(ov.HA.LastFailover.Unix()))
		}
		counter(c.haSync, ov.HA.SyncImported, "imported")
		counter(c.haSync, ov.HA.SyncExported, "exported")
		gauge(c.haConfigSync, b2f(ov.HA.ConfigSync == "in-sync"))
		counter(c.haSyncRefused, ov.HA.SyncRefused)
	}

	c.bgp.collect(ch, ov.BGP)

	m := c.src.Metrics()
	counter(c.forwarded, m.Forwarded)
	counter(c.txCompleted, m.TXCompleted)
	counter(c.txInvalid, m.TXInvalid)
	counter(c.ifTXDropped, m.IfTXDropped)
	counter(c.fastpath, m.FastPathTX)
	byLabel := func(d *prometheus.Desc, m map[string]uint64) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			counter(d, m[k], k)
		}
	}
	byLabel(c.drops, m.Drops)
	byLabel(c.fpDecisions, m.FastPathDecisions)
	byLabel(c.icmpRouted, m.ICMPRouted)
	counter(c.reloads, m.Reloads-min(m.ReloadFailures, m.Reloads), "success")
	counter(c.reloads, m.ReloadFailures, "failure")
	gauge(c.lastReloadOK, b2f(!m.LastReloadFailed))
	counter(c.healthLocal, m.HealthLocalErrors)
	counter(c.apiRefused, c.refused.Load())
	for _, svc := range slices.Sorted(maps.Keys(m.L7Refused)) {
		for _, r := range slices.Sorted(maps.Keys(m.L7Refused[svc])) {
			counter(c.l7Refused, m.L7Refused[svc][r], svc, r)
		}
	}
	if !m.LastReloadSuccess.IsZero() {
		gauge(c.lastReloadSuccessStamp, float64(m.LastReloadSuccess.UnixNano())/1e9)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
