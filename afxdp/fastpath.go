package afxdp

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"structs"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// DefaultFastPathEntries is the default size of the fast-path map (clients
// whose server is decided). The map is a plain hash: the kernel never evicts a
// decision; when it is full a new one is refused (counted in
// [FastPathStats].Refused; that client stays on the pipeline, which forwards it
// all the same) until the control plane's ager deletes idle or stale ones
// (counted in [FastPathStats].Expired).
const DefaultFastPathEntries = 65536

// maxFastPathServices is the number of fast-path service ids (the VIP map's
// value is one byte; 0 means no fast path).
const maxFastPathServices = 255

// FastPathKey is a key of the fast-path map: a fast-path service id (see
// [FastPath.ServiceID]) and a client source address (IPv6, or IPv4-mapped).
// Its layout is the program's struct fp_key.
type FastPathKey struct {
	_       structs.HostLayout
	Service uint32
	Client  [16]byte
}

// FastPathValue is the decision recorded for a client: the server's MAC, the
// interface's MAC, the generation it was made under, the server's counter slot
// (see [Dataplane.ServerCount]; 0: not counted) and when the client was last
// seen (CLOCK_MONOTONIC nanoseconds; the program refreshes it). Its layout is
// the program's struct fp_value.
type FastPathValue struct {
	_      structs.HostLayout
	DstMAC [6]byte
	SrcMAC [6]byte
	Gen    uint32
	Slot   uint32
	_      [4]byte
	Seen   uint64
}

// FastPath is the steering program's fast path: a hash map (service,
// client) -> (server MAC, generation) that the pipeline fills after a pick,
// and the current generation. A frame of a VIP with a fast-path id, not a
// non-first fragment, addressed to our MAC, whose client has an entry of the
// current generation, gets the server's MAC and leaves with XDP_TX without
// reaching a socket (counter fastpath_tx in [Dataplane.ProgramStats]).
//
// The control plane calls [FastPath.Bump] after every snapshot swap: every
// decision recorded before is then stale and the client's next frame goes to
// the pipeline again. Writers read [FastPath.Generation] before loading the
// snapshot they decide with, so a decision is never recorded under a
// generation newer than its snapshot. All methods are safe for concurrent use.
type FastPath struct {
	m   *ebpf.Map // fastpath
	gm  *ebpf.Map // fp_gen
	gen atomic.Uint32

	mu    sync.Mutex // guards ids and names; serialises Bump
	ids   map[string]uint8
	names [maxFastPathServices + 1]string
	live  atomic.Pointer[map[string]uint8] // services with FastPath in the last SetVIPs

	updates atomic.Uint64 // Update calls
	entries atomic.Uint64 // entries written
	errs    atomic.Uint64 // failed Update calls
	refused atomic.Uint64 // new entries refused: the map was full
	expired atomic.Uint64 // entries Walk deleted
}

func newFastPath(m, gm *ebpf.Map) (*FastPath, error) {
	f := &FastPath{m: m, gm: gm, ids: map[string]uint8{}}
	empty := map[string]uint8{}
	f.live.Store(&empty)
	if err := f.Bump(); err != nil {
		return nil, err
	}
	return f, nil
}

// Generation returns the current generation.
func (f *FastPath) Generation() uint32 { return f.gen.Load() }

// Bump starts a new generation: every recorded decision becomes stale.
func (f *FastPath) Bump() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.gen.Load() + 1
	if err := f.gm.Put(uint32(0), g); err != nil {
		return fmt.Errorf("bump fast-path generation: %w", err)
	}
	f.gen.Store(g)
	return nil
}

// ServiceID returns the fast-path id of the service named name, 0 when the
// service has no fast path (not in the last SetVIPs with FastPath set).
func (f *FastPath) ServiceID(name string) uint32 {
	return uint32((*f.live.Load())[name])
}

// ServiceName returns the name of the service with fast-path id id ("" if none).
func (f *FastPath) ServiceName(id uint32) string {
	if id == 0 || id > maxFastPathServices {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := (*f.live.Load())[f.names[id]]; !ok {
		return ""
	}
	return f.names[id]
}

// idFor returns the id of a service name, assigning one on first use. Ids are
// not reused while the dataplane is open.
func (f *FastPath) idFor(name string) (uint8, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.ids[name]; ok {
		return id, nil
	}
	if len(f.ids) >= maxFastPathServices {
		return 0, fmt.Errorf("fast path for service %q: more than %d fast-path services since start (restart medialb)", name, maxFastPathServices)
	}
	id := uint8(len(f.ids) + 1)
	f.ids[name] = id
	f.names[id] = name
	return id, nil
}

// setLive records which services have the fast path (after SetVIPs).
func (f *FastPath) setLive(live map[string]uint8) { f.live.Store(&live) }

// Update writes decisions into the map with one batch syscall (one Put per
// entry if the kernel has no batch operations). keys[i] gets vals[i]; a zero
// Seen is set to now (the client was just seen by the pipeline). A new key that
// finds the map full is skipped and counted (Refused), not an error: its
// client stays on the pipeline; the other entries are written.
func (f *FastPath) Update(keys []FastPathKey, vals []FastPathValue) error {
	if len(keys) == 0 {
		return nil
	}
	if len(vals) != len(keys) {
		return fmt.Errorf("update fast-path map: %d keys, %d values", len(keys), len(vals))
	}
	now := Monotonic()
	for i := range vals {
		if vals[i].Seen == 0 {
			vals[i].Seen = now
		}
	}
	f.updates.Add(1)
	written := 0
	for i := 0; i < len(keys); {
		done, err := updateBatch(f.m.FD(), keys[i:], vals[i:])
		written += done
		i += done
		switch {
		case err == nil:
		case errors.Is(err, unix.E2BIG): // keys[i] is new and the map is full
			f.refused.Add(1)
			i++
		case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP):
			n, err := f.updateEach(keys[i:], vals[i:])
			f.entries.Add(uint64(written + n))
			return err
		default:
			f.entries.Add(uint64(written))
			f.errs.Add(1)
			return fmt.Errorf("update fast-path map: %w", err)
		}
	}
	f.entries.Add(uint64(written))
	return nil
}

// updateEach is Update for a kernel without batch operations: one Put per entry.
func (f *FastPath) updateEach(keys []FastPathKey, vals []FastPathValue) (written int, err error) {
	for i := range keys {
		if err := f.m.Put(keys[i], vals[i]); err != nil {
			if errors.Is(err, unix.E2BIG) {
				f.refused.Add(1)
				continue
			}
			f.errs.Add(1)
			return written, fmt.Errorf("update fast-path map: %w", err)
		}
		written++
	}
	return written, nil
}

// batchAttr is union bpf_attr for the BPF_MAP_*_BATCH commands.
type batchAttr struct {
	inBatch, outBatch, keys, values uint64
	count, mapFD                    uint32
	elemFlags, flags                uint64
}

const bpfMapUpdateBatch = 26 // BPF_MAP_UPDATE_BATCH

// updateBatch is BPF_MAP_UPDATE_BATCH without allocating (cilium/ebpf's
// BatchUpdate allocates on every call, and the workers call this per batch). It
// returns how many entries the kernel wrote: all of them without error, those
// before the failing one otherwise.
//
// Sound because: FastPathKey and FastPathValue have exactly the layout of the
// program's struct fp_key (20 bytes) and struct fp_value (24 bytes), with no
// Go padding (checked by TestFastPathLayout); the kernel reads count entries
// of each from the two arrays during the syscall only, and KeepAlive holds
// the slices until it has returned. Callers pass len(keys) == len(vals) > 0.
func updateBatch(fd int, keys []FastPathKey, vals []FastPathValue) (int, error) {
	attr := batchAttr{
		keys:   uint64(uintptr(unsafe.Pointer(&keys[0]))),
		values: uint64(uintptr(unsafe.Pointer(&vals[0]))),
		count:  uint32(len(keys)),
		mapFD:  uint32(fd),
	}
	_, _, errno := unix.Syscall(unix.SYS_BPF, bpfMapUpdateBatch, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(keys)
	runtime.KeepAlive(vals)
	if errno != 0 {
		return min(int(attr.count), len(keys)), errno
	}
	return len(keys), nil
}

// Lookup returns the entry for (service id, client), for tests and tools.
func (f *FastPath) Lookup(service uint32, client netip.Addr) (FastPathValue, bool) {
	var v FastPathValue
	err := f.m.Lookup(FastPathKey{Service: service, Client: client.As16()}, &v)
	return v, err == nil
}

// FastPathStats are the user-space counters of a FastPath.
type FastPathStats struct {
	Updates uint64 // Update calls (syscalls)
	Entries uint64 // entries written
	Errors  uint64 // failed Update calls
	// Refused counts new decisions not recorded because the map was full (the
	// client stays on the pipeline); nothing is ever evicted to make room.
	Refused uint64
	// Expired counts entries Walk deleted: idle, of an older generation or of a
	// service that is gone (the control plane's ageing rules).
	Expired uint64
	Gen     uint32 // current generation
}

// Stats returns the counters.
func (f *FastPath) Stats() FastPathStats {
	return FastPathStats{Updates: f.updates.Load(), Entries: f.entries.Load(), Errors: f.errs.Load(),
		Refused: f.refused.Load(), Expired: f.expired.Load(), Gen: f.gen.Load()}
}

// Monotonic returns CLOCK_MONOTONIC in nanoseconds: the clock of
// FastPathValue.Seen.
func Monotonic() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// Walk calls fn for every entry of the map with how long ago its client was
// last seen; the entries for which fn returns false are deleted. It is meant
// for the control plane (every few seconds): it reads the whole map.
func (f *FastPath) Walk(fn func(k FastPathKey, v FastPathValue, idle time.Duration) (keep bool)) (kept, deleted int, err error) {
	var (
		k   FastPathKey
		v   FastPathValue
		del []FastPathKey
	)
	now := Monotonic()
	it := f.m.Iterate()
	for it.Next(&k, &v) {
		var idle time.Duration
		if now > v.Seen {
			idle = time.Duration(now - v.Seen)
		}
		if fn(k, v, idle) {
			kept++
		} else {
			del = append(del, k)
		}
	}
	if err := it.Err(); err != nil {
		return kept, 0, fmt.Errorf("walk fast-path map: %w", err)
	}
	for _, k := range del {
		if err := f.m.Delete(k); err != nil && !isNotExist(err) {
			return kept, deleted, fmt.Errorf("delete fast-path entry: %w", err)
		}
		deleted++
		f.expired.Add(1)
	}
	return kept, deleted, nil
}
