package tables

import "sync"

// MaxServerSlots is the number of counter slots for layer-4 real servers
// (bpf/steer.c's SRV_SLOTS): slot 0 means "not counted", so 4095 servers
// (and fallbacks), by service and name, over the life of a process.
const MaxServerSlots = 4096

// slotRegistry gives each layer-4 (service, server) pair, by name, a counter
// slot that stays the same across snapshots, so that counters kept by slot
// (the pipeline's, the XDP program's per-CPU ones) keep adding up across
// reloads. Slots are never reused; when they run out, new servers get slot 0
// and are not counted. Safe for concurrent use.
type slotRegistry struct {
	mu     sync.Mutex
	byName map[string]uint32
}

// slotFor returns the slot of server name of service svc, assigning one on
// first use.
func (r *slotRegistry) slotFor(svc, name string) uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := svc + "/" + name
	if s, ok := r.byName[k]; ok {
		return s
	}
	n := uint32(len(r.byName)) + 1
	if n >= MaxServerSlots {
		return 0
	}
	r.byName[k] = n
	return n
}

// assignSlots sets the counter slots of a layer-4 service's servers.
func (r *slotRegistry) assignSlots(svc *Service) {
	if svc.Layer != Layer4 {
		return
	}
	for _, srv := range svc.Servers {
		srv.Slot = r.slotFor(svc.Name, srv.Name)
	}
	if svc.Fallback != nil {
		svc.Fallback.Slot = r.slotFor(svc.Name, "\x00fallback/"+svc.Fallback.Name)
	}
}
