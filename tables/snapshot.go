package tables

import (
	"net/netip"
)

// Defaults for ServiceSpec fields left zero.
const (
	DefaultMaglevSize  = 65537
	DefaultAffinityCap = 1 << 16
)

// Snapshot is the immutable result of [Build]. It is safe for concurrent use.
type Snapshot struct {
	seed     uint64
	services []*Service
	byName   map[string]*Service
	vips     map[netip.Addr]*vipEntry
	// vipList holds the same entries as vips when there are at most
	// vipScanMax of them: a linear scan of a few addresses beats the map.
	vipList []vipSlot
	slots   *slotRegistry // shared by every snapshot built from this one
}

// vipScanMax is the most VIPs looked up by linear scan rather than the map.
const vipScanMax = 8

type vipSlot struct {
	addr netip.Addr
	e    *vipEntry
}

// vip returns the entry of address dst, or nil.
func (s *Snapshot) vip(dst netip.Addr) *vipEntry {
	if dst.Is4In6() {
		dst = dst.Unmap()
	}
	if s.vipList != nil {
		for i := range s.vipList {
			if s.vipList[i].addr == dst {
				return s.vipList[i].e
			}
		}
		return nil
	}
	return s.vips[dst]
}

type vipEntry struct {
	tcp, udp *portIndex
}

// portIndex maps a destination port to 1 + index into svcs (0: no service).
type portIndex struct {
	ports [65536]uint8
	svcs  []*Service
}

// Build compiles spec into an immutable snapshot. prev may be nil. Services
// with the same Name in prev keep their affinity table; a server is identified
// across snapshots by Name.
func Build(spec Spec, prev *Snapshot) (*Snapshot, error) {
	return build(spec, prev)
}

// HashSeed returns the seed the snapshot was built with.
func (s *Snapshot) HashSeed() uint64 { return s.seed }

// Lookup returns the service for a packet to dst, proto and destination port,
// or nil when it is not for a VIP. It costs the same for any number of ports,
// takes no lock and allocates nothing.
func (s *Snapshot) Lookup(dst netip.Addr, proto uint8, port uint16) *Service {
	v := s.vip(dst)
	if v == nil {
		return nil
	}
	var pi *portIndex
	switch proto {
	case ProtoTCP:
		pi = v.tcp
	case ProtoUDP:
		pi = v.udp
	}
	if pi == nil {
		return nil
	}
	i := pi.ports[port]
	if i == 0 {
		return nil
	}
	return pi.svcs[i-1]
}

// LookupFragment returns the layer-4 service on dst and proto for a non-first IP
// fragment, which carries no port, or nil. Layer-7 services are skipped: their
// fragments are the kernel's, which reassembles them for its listeners. When several
// layer-4 services share dst and proto, the first in config order is returned; the
// configuration refuses that (see config's check), since a fragment could not be told
// apart without reassembly.
func (s *Snapshot) LookupFragment(dst netip.Addr, proto uint8) *Service {
	v := s.vip(dst)
	if v == nil {
		return nil
	}
	var pi *portIndex
	switch proto {
	case ProtoTCP:
		pi = v.tcp
	case ProtoUDP:
		pi = v.udp
	}
	if pi == nil {
		return nil
	}
	for _, svc := range pi.svcs {
		if svc.Layer == Layer4 {
			return svc
		}
	}
	return nil
}

// Services returns the services in config order. The slice must not be modified.
func (s *Snapshot) Services() []*Service { return s.services }

// Service returns the service named name, or nil.
func (s *Snapshot) Service(name string) *Service { return s.byName[name] }

// Server returns the real server named name, else the fallback server of
// that name, else nil.
func (svc *Service) Server(name string) *Server {
	for _, s := range svc.Servers {
		if s.Name == name {
			return s
		}
	}
	if svc.Fallback != nil && svc.Fallback.Name == name {
		return svc.Fallback
	}
	return nil
}
