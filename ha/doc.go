// Package ha runs a medialb node as one half of a clustered pair.
//
// VRRP decides which node holds the VIPs, and keepalived speaks it: medialb
// writes keepalived's configuration from its own (one VRRPv3 instance with the
// VIPs, unicast to ha.peer, nopreempt unless ha.preempt, advert_int from
// ha.advert_interval), runs keepalived as its child in the foreground and
// starts it again if it dies. keepalived gets SIGTERM when medialb dies, even by
// SIGKILL (Pdeathsig): it then releases the VIPs and advertises priority 0, and
// the peer takes over at once. medialb's own health (dataplane attached,
// workers alive) reaches keepalived through a track file: an unhealthy node
// goes to FAULT and releases the VIPs. keepalived tells medialb its role
// through a notify FIFO; on becoming master medialb announces the VIPs as well
// (keepalived sends gratuitous ARP too).
//
// Both nodes keep the dataplane attached and the layer-7 listeners bound, and
// compile the same tables from the same configuration and hash seed, so a
// takeover only moves addresses. On top, the sync channel (TCP to
// ha.peer:ha.sync_port, every frame authenticated with HMAC-SHA256 keyed with
// ha.secret) carries heartbeats (the peer's role, shown as peer_state), the
// master's source-IP persistence entries (as ages, since the two nodes'
// persistence clocks differ), so that clients whose server differs from the
// Maglev pick keep it after a takeover, and the master's administrative states
// (drain, halt), which the backup applies. Each node listens for it on its
// own address only (never a VIP) and takes connections from ha.peer only;
// what an unauthenticated connection may cost is bounded (see sync.go).
// keepalived likewise takes adverts from ha.peer only (check_unicast_src).
//
// The configuration follows the primary, the node with the higher
// ha.priority, whatever its VRRP role: after each of its reloads, and whenever
// the peer's digest differs (asked every ConfigSyncInterval), [Pusher] sends
// its virtual_services to the secondary's API (POST /api/v1/ha/config, TLS,
// each request and answer authenticated with an HMAC keyed with ha.secret).
// A request is authenticated from its headers before its body is read, and a
// replay is refused also after a restart (the last time taken is kept in
// node.state_dir). The secondary ([ConfigHandler]) validates them with its own node, api and ha
// sections, keeps them in node.state_dir (config.OverlayFile, its own file may
// be read-only) and reloads; an invalid push is refused with every problem as
// FILE:LINE and the running configuration stays. Node-local settings are
// never sent.
package ha
