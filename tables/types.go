package tables

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// IP protocol numbers understood by [Snapshot.Lookup].
const (
	ProtoTCP uint8 = 6
	ProtoUDP uint8 = 17
)

// State is the administrative and health state of a real server.
type State uint8

// Real server states. Online takes new and persistent clients; Drain takes no
// new clients but keeps its persistent ones; Halt (administrative) and Down
// (failed health check) take no clients at all.
const (
	StateOnline State = iota
	StateDrain
	StateHalt
	StateDown
)

// String returns "online", "drain", "halt" or "down" (the REST API's names).
func (s State) String() string {
	switch s {
	case StateOnline:
		return "online"
	case StateDrain:
		return "drain"
	case StateHalt:
		return "halt"
	case StateDown:
		return "down"
	}
	return "unknown"
}

// InService reports whether a server in state s may keep clients: online or
// drain. Halt and down take it out of service: its persistent clients move
// and its layer-7 connections are closed.
func (s State) InService() bool { return s == StateOnline || s == StateDrain }

// Layer is a virtual service's layer: [Layer4] (direct routing) or [Layer7]
// (the SNAT proxy).
type Layer uint8

// Layers.
const (
	Layer4 Layer = 4
	Layer7 Layer = 7
)

// Key names one real server of one virtual service. It is comparable, so it
// keys maps of per-server state (health, operator states, connection counts).
type Key struct{ Service, Server string }

// String returns "service/server", the form logs, the API's persistence sync
// and an HA pair's exchange of operator states use.
func (k Key) String() string { return k.Service + "/" + k.Server }

// PortRange is an inclusive range of destination ports.
type PortRange struct{ Lo, Hi uint16 }

// ServerSpec is one real server as the control plane hands it to [Build].
type ServerSpec struct {
	Name   string
	Addr   netip.Addr
	Port   uint16 // 0: the port the client connected to (L4 always 0)
	Weight uint32 // 0..65535; 0 = no new clients
	State  State
	MAC    [6]byte // L4: destination MAC (from the neighbour table)
	HasMAC bool    // L4: false = MAC unresolved -> not picked (neither new nor persistent)
	// TunnelSrc is the outer source address (ours, toward the server) when the
	// service encapsulates (ServiceSpec.Encap); MAC is then the next hop's.
	TunnelSrc netip.Addr
	// Encap is how frames reach the server (layer 4); EncapNone: direct routing.
	Encap Encap
	// GUEPort is the outer UDP destination port of EncapGUE.
	GUEPort uint16
	// Generation is bumped by the control plane whenever the server goes halt
	// or down; affinity entries recorded under another generation are stale.
	Generation uint32
}

// ServiceSpec is one virtual service as the control plane hands it to [Build].
type ServiceSpec struct {
	Name     string
	VIP      netip.Addr
	Ports    []PortRange
	TCP, UDP bool
	Layer    Layer
	// PersistTimeout is the source-IP persistence timeout; 0 disables
	// persistence (Maglev only). It is kept with a resolution of one second.
	PersistTimeout time.Duration
	Servers        []ServerSpec
	Fallback       *ServerSpec // used when no server is eligible for new clients
	MaglevSize     uint32      // prime; 0 -> DefaultMaglevSize
	// AffinityCap is the capacity (entries) of the persistence table; 0 ->
	// DefaultAffinityCap. It is rounded up to a power of two, at least one bucket.
	AffinityCap int
}

// Spec is the whole input of [Build].
type Spec struct {
	// HashSeed is node.hash_seed: the same seed and the same servers give the
	// same picks on every node.
	HashSeed uint64
	Services []ServiceSpec
}

// Verdict says how [Service.Pick] chose its server.
type Verdict uint8

// Pick verdicts.
const (
	VerdictPersist  Verdict = iota + 1 // affinity hit
	VerdictNew                         // Maglev pick, recorded when persistence is on
	VerdictFallback                    // no eligible server: the service's fallback server
	VerdictNoServer                    // no eligible server and no fallback: drop
)

// String returns a short name for metrics and logs.
func (v Verdict) String() string {
	switch v {
	case VerdictPersist:
		return "persist"
	case VerdictNew:
		return "new"
	case VerdictFallback:
		return "fallback"
	case VerdictNoServer:
		return "no_server"
	}
	return "unknown"
}

// Server is a real server in a [Snapshot]. It is read-only.
type Server struct {
	Name       string
	Addr       netip.Addr
	Port       uint16
	Weight     uint32
	State      State
	MAC        [6]byte
	HasMAC     bool
	TunnelSrc  netip.Addr // outer source address when the server is tunnelled
	Encap      Encap      // EncapNone: direct routing
	GUEPort    uint16     // outer UDP destination port of EncapGUE
	Generation uint32
	Index      int // position in Service.Servers; -1 for a fallback server
	// Slot is the server's counter slot (layer 4 only; 0: not counted): the same
	// for the same service and server name in every snapshot built from the first.
	// See MaxServerSlots.
	Slot uint32

	id uint32 // affinity identity (by name), stable across snapshots
}

// Service is a virtual service in a [Snapshot]. Its exported fields are
// read-only; Pick is safe for concurrent use.
type Service struct {
	Name           string
	VIP            netip.Addr
	Ports          []PortRange
	TCP, UDP       bool
	Layer          Layer
	PersistTimeout time.Duration
	Servers        []*Server // in config order
	Fallback       *Server   // nil if none
	MaglevSize     uint32

	seed     uint64
	table    []uint16  // Maglev: index into Servers; nil when no server is eligible
	aff      *Affinity // nil when PersistTimeout == 0
	timeout  uint32    // PersistTimeout in seconds
	byID     []int32   // affinity id -> index into Servers, -1 if absent
	eligible int       // number of servers in the Maglev table
}

// AffinityStats describes a service's persistence table.
type AffinityStats struct {
	Entries   int    // occupied slots (including expired ones not yet reused)
	Capacity  int    // slots
	Inserts   uint64 // choices recorded
	Evictions uint64 // live (unexpired) entries overwritten because their bucket was full
	// Refused counts new clients not recorded because every slot of their
	// bucket held an established client active within ActiveWindow (a flood of
	// new sources shows here, not as evictions of established clients).
	Refused uint64
	// FullDrops counts choices that could not be recorded because every
	// candidate slot was being written by another worker at that instant; the
	// client is picked by Maglev again on its next packet.
	FullDrops uint64
	Expired   uint64 // expired entries overwritten by a new one
}

// Holder holds the current snapshot. Its zero value holds nil. It is safe for
// concurrent use; Load never blocks.
type Holder struct{ p atomic.Pointer[Snapshot] }

// Load returns the current snapshot (nil before the first Store).
func (h *Holder) Load() *Snapshot { return h.p.Load() }

// Store makes s the current snapshot.
func (h *Holder) Store(s *Snapshot) { h.p.Store(s) }
