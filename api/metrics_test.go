package api

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsLint(t *testing.T) {
	s := newTestServer(t, newFake(), nil)
	problems, err := testutil.CollectAndLint(s.collector)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if n := testutil.CollectAndCount(s.collector); n < 40 {
		t.Errorf("%d metrics collected, want the per-service and per-server series", n)
	}
}

func TestMetricsValues(t *testing.T) {
	f := newFake()
	s := newTestServer(t, f, nil)
	want := `
# HELP medialb_real_server_state Real server state: 1 for the current one of online, drain, halt, down.
# TYPE medialb_real_server_state gauge
medialb_real_server_state{server="HM1",service="Harmonic_Management",state="down"} 0
medialb_real_server_state{server="HM1",service="Harmonic_Management",state="drain"} 1
medialb_real_server_state{server="HM1",service="Harmonic_Management",state="halt"} 0
medialb_real_server_state{server="HM1",service="Harmonic_Management",state="online"} 0
medialb_real_server_state{server="HM2",service="Harmonic_Management",state="down"} 0
medialb_real_server_state{server="HM2",service="Harmonic_Management",state="drain"} 0
medialb_real_server_state{server="HM2",service="Harmonic_Management",state="halt"} 0
medialb_real_server_state{server="HM2",service="Harmonic_Management",state="online"} 1
medialb_real_server_state{server="HT1",service="Harmonic_Traffic",state="down"} 1
medialb_real_server_state{server="HT1",service="Harmonic_Traffic",state="drain"} 0
medialb_real_server_state{server="HT1",service="Harmonic_Traffic",state="halt"} 0
medialb_real_server_state{server="HT1",service="Harmonic_Traffic",state="online"} 0
medialb_real_server_state{server="HT2",service="Harmonic_Traffic",state="down"} 0
medialb_real_server_state{server="HT2",service="Harmonic_Traffic",state="drain"} 0
medialb_real_server_state{server="HT2",service="Harmonic_Traffic",state="halt"} 0
medialb_real_server_state{server="HT2",service="Harmonic_Traffic",state="online"} 1
# HELP medialb_real_server_health_check_up Result of the last health check: 1 passed, 0 failed; absent before the first check.
# TYPE medialb_real_server_health_check_up gauge
medialb_real_server_health_check_up{server="HM1",service="Harmonic_Management"} 1
medialb_real_server_health_check_up{server="HM2",service="Harmonic_Management"} 1
medialb_real_server_health_check_up{server="HT1",service="Harmonic_Traffic"} 0
# HELP medialb_real_server_packets_total Packets forwarded to a real server by the layer-4 dataplane.
# TYPE medialb_real_server_packets_total counter
medialb_real_server_packets_total{server="HM1",service="Harmonic_Management"} 0
medialb_real_server_packets_total{server="HM2",service="Harmonic_Management"} 0
medialb_real_server_packets_total{server="HT1",service="Harmonic_Traffic"} 5000
medialb_real_server_packets_total{server="HT2",service="Harmonic_Traffic"} 4000
# HELP medialb_service_state Virtual service state: 1 for the current one of online, degraded, down.
# TYPE medialb_service_state gauge
medialb_service_state{service="Harmonic_Management",state="degraded"} 1
medialb_service_state{service="Harmonic_Management",state="down"} 0
medialb_service_state{service="Harmonic_Management",state="online"} 0
medialb_service_state{service="Harmonic_Traffic",state="degraded"} 1
medialb_service_state{service="Harmonic_Traffic",state="down"} 0
medialb_service_state{service="Harmonic_Traffic",state="online"} 0
# HELP medialb_service_panic 1 while the panic threshold keeps real servers of a virtual service in service although their health checks fail without an answer (the node suspects itself).
# TYPE medialb_service_panic gauge
medialb_service_panic{service="Harmonic_Management"} 0
medialb_service_panic{service="Harmonic_Traffic"} 1
# HELP medialb_service_panics_total Panics of a virtual service: more than panic_threshold of its real servers stopped answering health checks at once.
# TYPE medialb_service_panics_total counter
medialb_service_panics_total{service="Harmonic_Management"} 0
medialb_service_panics_total{service="Harmonic_Traffic"} 2
# HELP medialb_service_persistence_evictions_total Live persistence entries of a virtual service overwritten for a new client (unconfirmed ones first, established ones only when idle).
# TYPE medialb_service_persistence_evictions_total counter
medialb_service_persistence_evictions_total{service="Harmonic_Management"} 0
medialb_service_persistence_evictions_total{service="Harmonic_Traffic"} 12
# HELP medialb_service_persistence_refused_total New clients of a virtual service not recorded because their bucket held only active established clients (a flood of new sources).
# TYPE medialb_service_persistence_refused_total counter
medialb_service_persistence_refused_total{service="Harmonic_Management"} 0
medialb_service_persistence_refused_total{service="Harmonic_Traffic"} 345
# HELP medialb_dataplane_dropped_packets_total Frames the layer-4 dataplane dropped, by reason.
# TYPE medialb_dataplane_dropped_packets_total counter
medialb_dataplane_dropped_packets_total{reason="malformed_ipv4"} 1
medialb_dataplane_dropped_packets_total{reason="no_service"} 12
# HELP medialb_dataplane_fastpath_decisions_total Decisions of the layer-4 pipeline for the XDP fast-path map, by result: recorded; refused_full (the map was full: the client stays on the pipeline, no decision is ever evicted for it); expired (idle, or made under an older configuration, and deleted).
# TYPE medialb_dataplane_fastpath_decisions_total counter
medialb_dataplane_fastpath_decisions_total{result="expired"} 7
medialb_dataplane_fastpath_decisions_total{result="recorded"} 40
medialb_dataplane_fastpath_decisions_total{result="refused_full"} 3
# HELP medialb_config_reloads_total Configuration reloads (SIGHUP and API), by result.
# TYPE medialb_config_reloads_total counter
medialb_config_reloads_total{result="failure"} 1
medialb_config_reloads_total{result="success"} 2
# HELP medialb_config_last_reload_successful Whether the last configuration reload succeeded (1) or was refused (0).
# TYPE medialb_config_last_reload_successful gauge
medialb_config_last_reload_successful 0
# HELP medialb_health_check_local_errors_total Health checks not made because this node was out of file descriptors, ports or buffers (EMFILE, ENFILE, EADDRNOTAVAIL, ENOBUFS); the servers kept their last state.
# TYPE medialb_health_check_local_errors_total counter
medialb_health_check_local_errors_total 7
# HELP medialb_l7_refused_connections_total Layer-7 clients closed at accept, by reason: max_connections, max_connections_per_source, out_of_resources (this node out of descriptors or ports when connecting to a server).
# TYPE medialb_l7_refused_connections_total counter
medialb_l7_refused_connections_total{reason="max_connections",service="Harmonic_Management"} 2
medialb_l7_refused_connections_total{reason="max_connections_per_source",service="Harmonic_Management"} 5
`
	// Read at scrape time: changes in the source show at the next scrape.
	if w := serve(s, "POST", "/api/v1/services/Harmonic_Management/real-servers/HM1/drain", true); w.Code != 200 {
		t.Fatal(w.Code)
	}
	f.mu.Lock()
	f.ov.Services[1].RealServers[1].Health = "unknown" // not checked yet: no health series
	f.mu.Unlock()
	f.setHealth("Harmonic_Traffic", "HT1", false, "refused")
	err := testutil.CollectAndCompare(s.collector, strings.NewReader(want),
		"medialb_real_server_state", "medialb_real_server_health_check_up", "medialb_real_server_packets_total",
		"medialb_service_state", "medialb_service_panic", "medialb_service_panics_total", "medialb_service_persistence_evictions_total", "medialb_service_persistence_refused_total",
		"medialb_dataplane_dropped_packets_total", "medialb_dataplane_fastpath_decisions_total", "medialb_config_reloads_total",
		"medialb_config_last_reload_successful", "medialb_health_check_local_errors_total", "medialb_l7_refused_connections_total")
	if err != nil {
		t.Error(err)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	s := newTestServer(t, newFake(), nil)
	w := serve(s, "GET", "/metrics", true)
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	body := w.Body.String()
	for _, want := range []string{
		`medialb_build_info{goversion="go`,
		`medialb_service_bytes_total{service="Harmonic_Traffic"} 9e+06`,
		`medialb_real_server_connections{server="HM1",service="Harmonic_Management"} 2`,
		`medialb_real_server_active_clients{server="HT1",service="Harmonic_Traffic"} 4`,
		`medialb_real_server_health_check_duration_seconds{server="HM1",service="Harmonic_Management"} 0.012`,
		`medialb_dataplane_forwarded_packets_total 9000`,
		`medialb_config_last_reload_success_timestamp_seconds 1.740494125e+09`,
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
