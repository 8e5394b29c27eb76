package api

import (
	"runtime"
	"runtime/debug"
	"sort"
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
	src Source

	buildInfo *prometheus.Desc
	version   string
	revision  string

	svcState, svcConns, svcClients, svcPackets, svcBytes                      *prometheus.Desc
	rsState, rsWeight, rsConns, rsClients, rsPackets, rsBytes                 *prometheus.Desc
	rsHealthUp, rsHealthSeconds                                               *prometheus.Desc
	rsConfWeight, rsFeedback, rsFeedbackAge, rsProblems                       *prometheus.Desc
	forwarded, fastpath, drops, reloads, lastReloadOK, lastReloadSuccessStamp *prometheus.Desc
	haRole                                                                    *prometheus.Desc
	haPeerUp, haFailovers, haLastFailover, haSync, haConfigSync               *prometheus.Desc
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
		src: src, version: version, revision: revision,
		buildInfo: d("build_info", "Build information of the running medialb; always 1.", "version", "revision", "goversion"),

		svcState:   d("service_state", "Virtual service state: 1 for the current one of online, degraded, down.", "service", "state"),
		svcConns:   d("service_connections", "Established layer-7 client connections of a virtual service.", svc...),
		svcClients: d("service_active_clients", "Source-IP persistence entries (clients) of a virtual service.", svc...),
		svcPackets: d("service_packets_total", "Packets forwarded for a virtual service by the layer-4 dataplane.", svc...),
		svcBytes:   d("service_bytes_total", "Bytes forwarded for a virtual service, both directions.", svc...),

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

		forwarded:              d("dataplane_forwarded_packets_total", "Frames the layer-4 dataplane transmitted."),
		fastpath:               d("dataplane_fastpath_packets_total", "Frames of clients with a decided server that the XDP steering program forwarded itself (XDP_TX), without the AF_XDP pipeline."),
		drops:                  d("dataplane_dropped_packets_total", "Frames the layer-4 dataplane dropped, by reason.", "reason"),
		reloads:                d("config_reloads_total", "Configuration reloads (SIGHUP and API), by result.", "result"),
		lastReloadOK:           d("config_last_reload_successful", "Whether the last configuration reload succeeded (1) or was refused (0)."),
		lastReloadSuccessStamp: d("config_last_reload_success_timestamp_seconds", "When the configuration in force was loaded, in seconds since the epoch."),
		haRole:                 d("ha_role", "HA role of this node: 1 for the current one of master, backup.", "role"),
		haPeerUp:               d("ha_peer_reachable", "Whether this node hears its HA peer (1) or not (0)."),
		haFailovers:            d("ha_failovers_total", "Role changes of this node to or from master since it started."),
		haLastFailover:         d("ha_last_failover_timestamp_seconds", "When this node last became or stopped being master, in seconds since the epoch."),
		haSync:                 d("ha_sync_entries_total", "Persistence entries exchanged with the HA peer, by direction.", "direction"),
		haConfigSync:           d("ha_config_in_sync", "On the primary: whether the peer runs this node's virtual_services (1) or not, or not yet known (0)."),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.buildInfo,
		c.svcState, c.svcConns, c.svcClients, c.svcPackets, c.svcBytes,
		c.rsState, c.rsWeight, c.rsConns, c.rsClients, c.rsPackets, c.rsBytes, c.rsHealthUp, c.rsHealthSeconds,
		c.rsConfWeight, c.rsFeedback, c.rsFeedbackAge, c.rsProblems,
		c.forwarded, c.fastpath, c.drops, c.reloads, c.lastReloadOK, c.lastReloadSuccessStamp, c.haRole,
		c.haPeerUp, c.haFailovers, c.haLastFailover, c.haSync, c.haConfigSync,
	} {
		ch <- d
	}
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
	}

	m := c.src.Metrics()
	counter(c.forwarded, m.Forwarded)
	counter(c.fastpath, m.FastPathTX)
	reasons := make([]string, 0, len(m.Drops))
	for r := range m.Drops {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		counter(c.drops, m.Drops[r], r)
	}
	counter(c.reloads, m.Reloads-min(m.ReloadFailures, m.Reloads), "success")
	counter(c.reloads, m.ReloadFailures, "failure")
	gauge(c.lastReloadOK, b2f(!m.LastReloadFailed))
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
