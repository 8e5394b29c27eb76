package tables

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// MaxServers is the most real servers a service can have (table entries are
// uint16 indices, 0xFFFF reserved).
const MaxServers = noServer - 1

// MaxServicesPerVIPProto is the most services one (VIP, protocol) can carry
// (the port index stores 1 + a uint8 index).
const MaxServicesPerVIPProto = 255

func build(spec Spec, prev *Snapshot) (*Snapshot, error) {
	s := &Snapshot{
		seed:   spec.HashSeed,
		byName: make(map[string]*Service, len(spec.Services)),
		vips:   make(map[netip.Addr]*vipEntry),
		slots:  &slotRegistry{byName: map[string]uint32{}},
	}
	if prev != nil {
		s.slots = prev.slots
	}
	for i := range spec.Services {
		ss := &spec.Services[i]
		if _, dup := s.byName[ss.Name]; dup {
			return nil, fmt.Errorf("building service %q: duplicate service name (names must be unique)", ss.Name)
		}
		var prevSvc *Service
		if prev != nil {
			prevSvc = prev.byName[ss.Name]
		}
		svc, err := buildService(spec.HashSeed, ss, prevSvc)
		if err != nil {
			return nil, fmt.Errorf("building service %q: %w", ss.Name, err)
		}
		s.slots.assignSlots(svc)
		s.services = append(s.services, svc)
		s.byName[svc.Name] = svc
		if err := s.index(svc); err != nil {
			return nil, fmt.Errorf("building service %q: %w", ss.Name, err)
		}
	}
	if len(s.vips) <= vipScanMax {
		s.vipList = make([]vipSlot, 0, len(s.vips))
		for i := range s.services { // config order: deterministic
			a := s.services[i].VIP
			if !slices.ContainsFunc(s.vipList, func(v vipSlot) bool { return v.addr == a }) {
				s.vipList = append(s.vipList, vipSlot{a, s.vips[a]})
			}
		}
	}
	return s, nil
}

// index adds svc's ports to the port indices of its VIP.
func (s *Snapshot) index(svc *Service) error {
	v := s.vips[svc.VIP]
	if v == nil {
		v = &vipEntry{}
		s.vips[svc.VIP] = v
	}
	for _, p := range []struct {
		on    bool
		pi    **portIndex
		proto string
	}{{svc.TCP, &v.tcp, "tcp"}, {svc.UDP, &v.udp, "udp"}} {
		if !p.on {
			continue
		}
		if *p.pi == nil {
			*p.pi = &portIndex{}
		}
		pi := *p.pi
		if len(pi.svcs) >= MaxServicesPerVIPProto {
			return fmt.Errorf("indexing %s %s: more than %d services on one address and protocol", svc.VIP, p.proto, MaxServicesPerVIPProto)
		}
		pi.svcs = append(pi.svcs, svc)
		n := uint8(len(pi.svcs))
		for _, r := range svc.Ports {
			for port := int(r.Lo); port <= int(r.Hi); port++ {
				if o := pi.ports[port]; o != 0 {
					return fmt.Errorf("indexing %s %s port %d: already used by service %q (make the port ranges disjoint)",
						svc.VIP, p.proto, port, pi.svcs[o-1].Name)
				}
				pi.ports[port] = n
			}
		}
	}
	return nil
}

func buildService(seed uint64, ss *ServiceSpec, prev *Service) (*Service, error) {
	if ss.Name == "" {
		return nil, errors.New("checking name: empty (give every service a name)")
	}
	if !ss.VIP.IsValid() {
		return nil, errors.New("checking address: not a valid IP address")
	}
	if ss.Layer != Layer4 && ss.Layer != Layer7 {
		return nil, fmt.Errorf("checking layer: %d (must be 4 or 7)", ss.Layer)
	}
	if !ss.TCP && !ss.UDP {
		return nil, errors.New("checking protocol: neither tcp nor udp")
	}
	if len(ss.Ports) == 0 {
		return nil, errors.New("checking ports: none given")
	}
	for _, r := range ss.Ports {
		if r.Lo > r.Hi {
			return nil, fmt.Errorf("checking port range %d-%d: low end above high end", r.Lo, r.Hi)
		}
	}
	if ss.PersistTimeout < 0 {
		return nil, fmt.Errorf("checking persistence timeout %v: negative", ss.PersistTimeout)
	}
	m := ss.MaglevSize
	if m == 0 {
		m = DefaultMaglevSize
	}
	if !IsPrime(uint64(m)) {
		return nil, fmt.Errorf("checking maglev size %d: not a prime (use e.g. 65537 or 131071)", m)
	}
	if len(ss.Servers) > MaxServers {
		return nil, fmt.Errorf("checking real servers: %d, at most %d", len(ss.Servers), MaxServers)
	}
	if uint64(m) <= uint64(len(ss.Servers)) {
		return nil, fmt.Errorf("checking maglev size %d: not above the number of real servers %d (use a prime of at least 100 times it)", m, len(ss.Servers))
	}
	if ss.AffinityCap < 0 || ss.AffinityCap > MaxAffinityCap {
		return nil, fmt.Errorf("checking affinity capacity %d: out of range 0..%d", ss.AffinityCap, MaxAffinityCap)
	}

	svc := &Service{
		Name:           ss.Name,
		VIP:            ss.VIP.Unmap(),
		Ports:          append([]PortRange(nil), ss.Ports...),
		TCP:            ss.TCP,
		UDP:            ss.UDP,
		Layer:          ss.Layer,
		PersistTimeout: ss.PersistTimeout,
		MaglevSize:     m,
		seed:           seed,
	}
	if ss.PersistTimeout > 0 {
		capacity := ss.AffinityCap
		if capacity == 0 {
			capacity = DefaultAffinityCap
		}
		if prev != nil && prev.aff != nil && prev.aff.capacity() == newAffinityCapacity(capacity) {
			svc.aff = prev.aff
		} else {
			svc.aff = newAffinity(capacity)
		}
		secs := (ss.PersistTimeout + time.Second - 1) / time.Second
		svc.timeout = uint32(min(secs, 1<<31-1))
	}

	names := make(map[string]bool, len(ss.Servers))
	var members []maglevMember
	var maxID uint32
	for i := range ss.Servers {
		sp := &ss.Servers[i]
		if err := checkServer(sp); err != nil {
			return nil, err
		}
		if sp.Encap != EncapNone && ss.Layer != Layer4 {
			return nil, fmt.Errorf("checking real server %q: encapsulation %s: layer-4 services only", sp.Name, sp.Encap)
		}
		if names[sp.Name] {
			return nil, fmt.Errorf("checking real server %q: duplicate name (names must be unique in a service)", sp.Name)
		}
		names[sp.Name] = true
		srv := newServer(sp, i)
		if svc.aff != nil {
			srv.id = svc.aff.idFor(sp.Name)
			maxID = max(maxID, srv.id)
		}
		svc.Servers = append(svc.Servers, srv)
		if svc.eligibleNew(srv) {
			members = append(members, maglevMember{name: srv.Name, index: uint16(i), weight: srv.Weight})
		}
	}
	if ss.Fallback != nil {
		if err := checkServer(ss.Fallback); err != nil {
			return nil, fmt.Errorf("checking fallback: %w", err)
		}
		svc.Fallback = newServer(ss.Fallback, -1)
	}
	if svc.aff != nil {
		svc.byID = make([]int32, maxID+1)
		for i := range svc.byID {
			svc.byID[i] = -1
		}
		for _, srv := range svc.Servers {
			svc.byID[srv.id] = int32(srv.Index)
		}
	}
	svc.table = buildMaglev(seed, m, members)
	svc.eligible = len(members)
	return svc, nil
}

func checkServer(sp *ServerSpec) error {
	if sp.Name == "" {
		return fmt.Errorf("checking real server %s: empty name (give every real server a name)", sp.Addr)
	}
	if !sp.Addr.IsValid() {
		return fmt.Errorf("checking real server %q: not a valid IP address", sp.Name)
	}
	if sp.Weight > 65535 {
		return fmt.Errorf("checking real server %q: weight %d above 65535", sp.Name, sp.Weight)
	}
	if sp.State > StateDown {
		return fmt.Errorf("checking real server %q: unknown state %d", sp.Name, sp.State)
	}
	if err := checkEncap(sp); err != nil {
		return fmt.Errorf("checking real server %q: %w", sp.Name, err)
	}
	return nil
}

func newServer(sp *ServerSpec, index int) *Server {
	return &Server{
		Name:       sp.Name,
		Addr:       sp.Addr.Unmap(),
		Port:       sp.Port,
		Weight:     sp.Weight,
		State:      sp.State,
		MAC:        sp.MAC,
		HasMAC:     sp.HasMAC,
		TunnelSrc:  sp.TunnelSrc.Unmap(),
		Encap:      sp.Encap,
		GUEPort:    sp.GUEPort,
		Generation: sp.Generation,
		Index:      index,
	}
}

// newAffinityCapacity is the slot count of a table for capacity entries:
// capacity rounded up to a whole power-of-two number of buckets, at least one.
func newAffinityCapacity(capacity int) int {
	nb := max((capacity+slotsPerBucket-1)/slotsPerBucket, 1)
	p := 1
	for p < nb {
		p <<= 1
	}
	return p * slotsPerBucket
}
