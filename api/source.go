package api

import (
	"time"
)

// Source is what the API shows and drives: the running node. The daemon implements
// it; tests use a fake. Its methods are called concurrently from request and scrape
// goroutines and must be safe for that.
type Source interface {
	// Overview returns a consistent picture of the node: every virtual service and
	// real server with its state, health and counters, taken at one moment.
	Overview() Overview

	// SetState sets an operator's state, "online", "drain" or "halt", for one real
	// server. An error wrapping control.ErrUnknown means the service or server does
	// not exist (the API answers 404); any other error is a failure to apply it (500).
	SetState(service, server, state string) error

	// Reload re-reads the configuration file. An error with a Lines() []string
	// method (config.Errors) is an invalid file (the API answers 422 with the lines);
	// any other error is a failure to apply it (500).
	// The strings are settings that changed but take effect only after a
	// restart (the answer names them).
	Reload() (restartNeeded []string, err error)

	// Metrics returns the node-wide numbers that are not part of the overview.
	Metrics() Metrics
}

// Overview is the System Overview: the node and its virtual services.
type Overview struct {
	Node     string    `json:"node"`
	Time     time.Time `json:"time"`
	HA       *HA       `json:"ha,omitempty"`
	BGP      *BGP      `json:"bgp,omitempty"`
	Services []Service `json:"services"`
}

// HA is the node's part in a clustered pair; nil without one.
type HA struct {
	Role      string `json:"role"`       // "master" or "backup"
	Peer      string `json:"peer"`       // the other node's address
	PeerState string `json:"peer_state"` // what this node knows of the peer, e.g. "backup", "unreachable"
	// Priority is the VRRP priority keepalived last reported for this node.
	Priority int `json:"priority,omitempty"`
	// Failovers counts this node's role changes to or from master since it started.
	Failovers uint64 `json:"failovers"`
	// LastFailover is when this node last became or stopped being master, nil if never.
	LastFailover *time.Time `json:"last_failover,omitempty"`
	// LastFailoverCause says why, e.g. "peer unreachable".
	LastFailoverCause string `json:"last_failover_cause,omitempty"`
	// SyncImported and SyncExported count the persistence entries taken from and
	// sent to the peer over the sync channel.
	SyncImported uint64 `json:"sync_imported"`
	SyncExported uint64 `json:"sync_exported"`
	// SyncRefused counts connections to the sync port closed at accept.
	SyncRefused uint64 `json:"sync_refused"`
	// ConfigSync says whether the pair runs the same virtual_services: "in-sync",
	// "secondary" (this node takes the peer's), "equal" (same priority: not synced),
	// "failed", "refused", or "" before the first comparison or without an API.
	ConfigSync string `json:"config_sync"`
}

// Service states, as computed by [ServiceState].
const (
	ServiceOnline   = "online"   // every real server is online
	ServiceDegraded = "degraded" // some real servers take new clients, some do not
	ServiceDown     = "down"     // no real server takes new clients
)

// Service is one virtual service.
type Service struct {
	Name        string `json:"name"`
	Address     string `json:"address"`
	Ports       string `json:"ports"`       // the guide's form, "1935,554,50000-65535"
	Layer       int    `json:"layer"`       // 4 or 7
	Protocol    string `json:"protocol"`    // "tcp", "udp" or "tcp+udp"
	Forwarding  string `json:"forwarding"`  // "direct-routing" (layer 4) or "proxy" (layer 7)
	Persistence string `json:"persistence"` // e.g. "source-ip 30m0s", or "none"
	// State is "online", "degraded" or "down" (see [ServiceState]); the API fills
	// it in from the real servers when the Source leaves it empty.
	State         string `json:"state"`
	Connections   int64  `json:"connections"`    // established layer-7 connections now
	ActiveClients int64  `json:"active_clients"` // persistence entries now
	Packets       uint64 `json:"packets"`        // packets forwarded (layer 4)
	Bytes         uint64 `json:"bytes"`          // bytes forwarded, both directions
	// PersistEvictions counts live persistence entries overwritten for a new client
	// (unconfirmed ones, or established ones idle for a while); PersistRefused counts
	// new clients not recorded because their bucket held only active established
	// ones (a flood of new sources shows here).
	// Panic is true while the service's panic threshold keeps real servers in service
	// whose health checks fail without an answer (the node suspects itself: see
	// config's panic_threshold); PanicSince is when it began, Panics counts them.
	Panic            bool         `json:"panic"`
	PanicSince       *time.Time   `json:"panic_since,omitempty"`
	Panics           uint64       `json:"panics"`
	PersistEvictions uint64       `json:"persistence_evictions"`
	PersistRefused   uint64       `json:"persistence_refused"`
	RealServers      []RealServer `json:"real_servers"`
}

// RealServer is one real server of a virtual service.
type RealServer struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Port    uint16 `json:"port,omitempty"` // 0: the port the client connected to
	Weight  int    `json:"weight"`
	// State is the effective state: "online", "drain", "halt" or "down" (failed
	// health check).
	State string `json:"state"`
	// Admin is the operator's state: "online", "drain" or "halt".
	Admin string `json:"admin"`
	// Health is the last health-check verdict: "up", "down", or "unknown" (not
	// checked yet, or no health check).
	Health             string  `json:"health"`
	HealthReason       string  `json:"health_reason,omitempty"`
	HealthCheckSeconds float64 `json:"health_check_seconds"` // how long the last check took
	Connections        int64   `json:"connections"`          // established layer-7 connections now
	ActiveClients      int64   `json:"active_clients"`       // persistence entries now
	Packets            uint64  `json:"packets"`              // packets forwarded (layer 4)
	Bytes              uint64  `json:"bytes"`                // bytes forwarded, both directions
	// ConfiguredWeight is the weight in the configuration; Weight is the
	// effective one, after the feedback agent's answer and a slow start.
	ConfiguredWeight int `json:"configured_weight"`
	// Feedback is the load agent's last word; nil without feedback.
	Feedback *Feedback `json:"feedback,omitempty"`
	// Problems are what medialb found wrong with the server's setup (the
	// direct-routing "ARP problem", say), each with its fix; empty when none.
	Problems []string `json:"problems"`
}

// Feedback is what a real server's load-feedback agent said.
type Feedback struct {
	// Percent is the share of the configured weight in force, 0..100.
	Percent int `json:"percent"`
	// Agent is the state the agent asked for: "drain", "maint", "down", or
	// "" when none (a state of the agent is not the operator's: Admin stays).
	Agent string `json:"agent,omitempty"`
	// Answer is the agent's last answer; Error why the last poll had none.
	Answer string `json:"answer,omitempty"`
	Error  string `json:"error,omitempty"`
	// AnsweredAt is when the agent last answered (RFC 3339), "" never.
	AnsweredAt string `json:"answered_at,omitempty"`
}

// Metrics are node-wide counters for /metrics that the overview does not carry.
// The zero value is a node that has forwarded nothing and never reloaded.
type Metrics struct {
	// Forwarded is the number of frames the layer-4 pipeline put on the TX ring
	// (not all of them need leave: see TXCompleted, TXInvalid, IfTXDropped).
	Forwarded uint64
	// TXCompleted counts the frames the kernel reported sent (the AF_XDP
	// completion rings); TXInvalid the descriptors it refused; IfTXDropped is the
	// interface's tx_dropped counter (the driver's drops, ours and the kernel's).
	TXCompleted, TXInvalid, IfTXDropped uint64
	// FastPathTX counts frames the XDP steering program forwarded itself (XDP_TX).
	FastPathTX uint64
	// FastPathDecisions counts what became of the decisions sent to the fast-path
	// map, by result: "recorded", "refused_full" (map full; the client stays on
	// the pipeline, nothing is evicted), "expired" (idle or stale, deleted).
	FastPathDecisions map[string]uint64
	// Drops is the number of frames the layer-4 dataplane dropped, by reason
	// (pipeline.Reason's names, such as "no_service").
	Drops map[string]uint64
	// ICMPRouted counts the ICMP errors about direct-routing flows sent to the
	// client's real server, by kind (pipeline.ICMPKind's names, such as
	// "frag_needed").
	ICMPRouted map[string]uint64
	// Reloads and ReloadFailures count configuration reloads (SIGHUP and API)
	// and how many of them were refused or failed.
	Reloads, ReloadFailures uint64
	// LastReloadFailed is true when the most recent reload was refused or failed.
	LastReloadFailed bool
	// LastReloadSuccess is when the configuration in force was loaded (at start or
	// by the last successful reload).
	LastReloadSuccess time.Time
	// HealthLocalErrors counts health checks not made because this node was out
	// of file descriptors, ports or buffers; their servers kept their state.
	HealthLocalErrors uint64
	// L7Refused counts layer-7 clients closed at accept, by service and then by
	// reason: "max_connections", "max_connections_per_source", "out_of_resources".
	L7Refused map[string]map[string]uint64
	// HASyncRefused counts connections to the HA sync port closed at accept
	// (not from ha.peer, or too many waiting for authentication).
	HASyncRefused uint64
}

// ServiceState derives a service's state from its real servers' states: "online"
// when all are online, "down" when none is, "degraded" otherwise.
func ServiceState(servers []RealServer) string {
	online := 0
	for _, r := range servers {
		if r.State == "online" && r.Weight > 0 {
			online++
		}
	}
	switch {
	case online == 0:
		return ServiceDown
	case online == len(servers):
		return ServiceOnline
	}
	return ServiceDegraded
}
