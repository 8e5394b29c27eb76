package pipeline

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"time"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/tables"
)

// Desc describes one frame in a socket's UMEM (an alias of [afxdp.Desc]).
type Desc = afxdp.Desc

// Port is the part of an AF_XDP socket a [Worker] uses. *[afxdp.Socket] implements it;
// tests use an in-memory fake. A Port is used by one worker only.
type Port interface {
	// Receive fills descs with received frames and returns how many; it never blocks.
	Receive(descs []Desc) int
	// Frame returns the bytes of a received frame; they may be modified in place.
	Frame(d Desc) []byte
	// Transmit queues descs for transmission and returns how many it accepted (a
	// prefix of descs); the others stay the caller's.
	Transmit(descs []Desc) int
	// Release gives frames that will not be transmitted back to the free pool.
	Release(descs []Desc)
	// Wait blocks until frames may have arrived or timeout has passed.
	Wait(timeout time.Duration) error
}

// Defaults for [WorkerOptions] fields left zero.
const (
	DefaultBatchSize = 64
	DefaultIdleWait  = 50 * time.Millisecond
)

// WorkerOptions tunes a [Worker]. The zero value gives the defaults.
type WorkerOptions struct {
	// BatchSize is the most frames handled per receive; 0 means DefaultBatchSize.
	BatchSize int
	// IdleWait is how long the worker blocks in Port.Wait when the RX ring is empty;
	// it also bounds how long Run takes to notice that its context is done.
	// 0 means DefaultIdleWait.
	IdleWait time.Duration
	// Clock returns the coarse clock in seconds that persistence uses
	// ([tables.Service.Pick]); it is called once per batch. All users of the same
	// tables (other workers, the L7 proxy, the control plane) must share it.
	// nil means [tables.Now], the clock they share.
	Clock func() uint32
	// FastPath, when set, receives the worker's decisions for clients of services
	// with a fast-path id ([FastPath.ServiceID]) so that the steering program can
	// forward their next frames itself (see [afxdp.FastPath]). nil: no fast path.
	FastPath FastPath
	// MTU is the interface's MTU, the most an encapsulated packet may measure
	// (forwarding: tunnel); 0 means DefaultMTU.
	MTU int
}

// FastPath is where a [Worker] records the decisions that the steering program may
// then apply itself with XDP_TX. *[afxdp.FastPath] implements it.
type FastPath interface {
	// Generation returns the current generation; the worker reads it before it
	// loads the snapshot it decides with.
	Generation() uint32
	// ServiceID returns the fast-path id of a service, 0 for none. The worker asks
	// again only when the snapshot or the generation changes.
	ServiceID(service string) uint32
	// Update records keys[i] -> vals[i] (one syscall for the batch).
	Update(keys []afxdp.FastPathKey, vals []afxdp.FastPathValue) error
}

// fpCacheSize is the number of slots of a worker's cache of recorded decisions
// (direct-mapped): a client's decision is sent to the map once per generation,
// again at most once a second while its frames still reach the worker.
const fpCacheSize = 4096

type fpCacheSlot struct {
	key afxdp.FastPathKey
	mac [6]byte
	gen uint32
	t   uint32
}

type fpService struct {
	svc *tables.Service
	id  uint32
}

// fastPathState is a worker's fast-path bookkeeping.
type fastPathState struct {
	fp    FastPath
	gen   uint32           // generation read before the batch's snapshot
	snap  *tables.Snapshot // snapshot ids were resolved for
	rgen  uint32           // generation ids were resolved at
	ids   []fpService
	cache []fpCacheSlot
	keys  []afxdp.FastPathKey
	vals  []afxdp.FastPathValue
}

// Worker is the poll-mode loop of one AF_XDP socket. Create it with [NewWorker] and
// start it with [Worker.Run]; Counters may be called from any goroutine.
type Worker struct {
	port     Port
	holder   *tables.Holder
	localMAC [6]byte
	idleWait time.Duration
	clock    func() uint32
	descs    []Desc
	slots    []uint32 // server slot of each frame to transmit, in descs order
	fp       *fastPathState
	grow     Headroom // the port, when its frames have headroom (tunnels)
	mtu      int

	c counters
}

// NewWorker returns a worker that forwards frames from port using the snapshot in
// holder, with localMAC as the source MAC of what it sends (and the destination MAC it
// accepts).
func NewWorker(port Port, holder *tables.Holder, localMAC [6]byte, opts WorkerOptions) *Worker {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.IdleWait <= 0 {
		opts.IdleWait = DefaultIdleWait
	}
	if opts.Clock == nil {
		opts.Clock = tables.Now
	}
	w := &Worker{
		port:     port,
		holder:   holder,
		localMAC: localMAC,
		idleWait: opts.IdleWait,
		clock:    opts.Clock,
		descs:    make([]Desc, opts.BatchSize),
		slots:    make([]uint32, opts.BatchSize),
		mtu:      opts.MTU,
	}
	if w.mtu <= 0 {
		w.mtu = DefaultMTU
	}
	w.grow, _ = port.(Headroom)
	w.c.srv = make([]serverCounter, tables.MaxServerSlots)
	if opts.FastPath != nil {
		w.fp = &fastPathState{
			fp:    opts.FastPath,
			cache: make([]fpCacheSlot, fpCacheSize),
			keys:  make([]afxdp.FastPathKey, 0, opts.BatchSize),
			vals:  make([]afxdp.FastPathValue, 0, opts.BatchSize),
		}
	}
	return w
}

// Run polls the port until ctx is done, on an OS thread of its own (locked for the
// duration): receive a batch, process it, transmit the forwarded frames, release the
// others; wait on the port when there is nothing to receive. It returns nil when ctx is
// done, or the error of Port.Wait. Run must not be called twice at the same time.
func (w *Worker) Run(ctx context.Context) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for ctx.Err() == nil {
		if w.poll() {
			continue
		}
		if err := w.port.Wait(w.idleWait); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("wait for frames: %w (socket closed?)", err)
		}
	}
	return nil
}

// Counters returns a copy of the worker's counters. It is safe to call while Run runs.
func (w *Worker) Counters() Counters { return w.c.load() }

// ServerCount returns what the worker sent to the layer-4 real server with counter
// slot slot ([tables.Server.Slot]; 0 and slots out of range count nothing). It is
// safe to call while Run runs.
func (w *Worker) ServerCount(slot uint32) ServerCount {
	if slot == 0 || int(slot) >= len(w.c.srv) {
		return ServerCount{}
	}
	return ServerCount{Packets: w.c.srv[slot].pkts.Load(), Bytes: w.c.srv[slot].bytes.Load()}
}

// countServers counts the frames the TX ring took (sent, the first frames of the
// batch, whose slots processBatch noted) by server.
func (w *Worker) countServers(sent []Desc) {
	var bs batchServers
	for i, d := range sent {
		if slot := w.slots[i]; slot != 0 && !bs.add(slot, int(d.Len)) {
			w.c.addServer(slot, 1, uint64(d.Len))
		}
	}
	for i := 0; i < bs.n; i++ {
		w.c.addServer(bs.slot[i], uint64(bs.pkts[i]), bs.byts[i])
	}
}

// poll handles one batch. It reports whether there was anything to receive.
func (w *Worker) poll() bool {
	n := w.port.Receive(w.descs)
	if n <= 0 {
		return false
	}
	descs := w.descs[:n]
	var bc batchCounts
	fp := w.fp
	if fp != nil {
		fp.gen = fp.fp.Generation() // before the snapshot: see FastPath
	}
	snap := w.holder.Load()
	if fp != nil && (snap != fp.snap || fp.gen != fp.rgen) {
		fp.resolve(snap)
	}
	now := w.clock()
	ntx := w.processBatch(snap, now, descs, &bc)
	sent := 0
	if ntx > 0 {
		sent = w.port.Transmit(descs[:ntx])
		if sent < ntx {
			bc.reasons[Forwarded] -= uint32(ntx - sent)
			bc.reasons[TXFull] += uint32(ntx - sent)
		}
	}
	if sent < n {
		w.port.Release(descs[sent:])
	}
	w.countServers(descs[:sent])
	w.c.add(&bc)
	if fp != nil && len(fp.keys) > 0 {
		w.c.fpEntries.Add(uint64(len(fp.keys)))
		w.c.fpFlushes.Add(1)
		if err := fp.fp.Update(fp.keys, fp.vals); err != nil {
			w.c.fpErrors.Add(1)
			// Forget what was not recorded, so it is tried again.
			for i := range fp.keys {
				fp.cache[fpSlot(fp.keys[i])].gen = fp.gen - 1
			}
		}
		fp.keys, fp.vals = fp.keys[:0], fp.vals[:0]
	}
	return true
}

// resolve looks up the fast-path ids of snap's layer-4 services (on a snapshot or
// generation change only).
func (fp *fastPathState) resolve(snap *tables.Snapshot) {
	fp.snap, fp.rgen = snap, fp.gen
	fp.ids = fp.ids[:0]
	if snap == nil {
		return
	}
	for _, svc := range snap.Services() {
		if svc.Layer != tables.Layer4 {
			continue
		}
		if id := fp.fp.ServiceID(svc.Name); id != 0 {
			fp.ids = append(fp.ids, fpService{svc, id})
		}
	}
}

// record queues d for the fast-path map unless it was queued already in this
// generation less than a second ago, or the client is new (see below).
func (fp *fastPathState) record(d *decision, localMAC [6]byte, now uint32) {
	// Admission: a client enters the map on its second packet (an affinity hit), so
	// a flood of one-packet sources never fills it; without persistence there is no
	// second look, and Maglev's choice is recorded at once.
	if d.frag || d.icmp != ICMPNone || !fastPathTunnel(d) || (d.verdict != tables.VerdictPersist &&
		(d.verdict != tables.VerdictNew || d.svc.PersistTimeout != 0)) {
		return
	}
	var id uint32
	for i := range fp.ids {
		if fp.ids[i].svc == d.svc {
			id = fp.ids[i].id
			break
		}
	}
	if id == 0 || len(fp.keys) == cap(fp.keys) {
		return
	}
	k := afxdp.FastPathKey{Service: id, Client: d.src.As16()}
	c := &fp.cache[fpSlot(k)]
	if c.key == k && c.gen == fp.gen && c.mac == d.srv.MAC && now-c.t < 1 {
		return
	}
	*c = fpCacheSlot{key: k, mac: d.srv.MAC, gen: fp.gen, t: now}
	fp.keys = append(fp.keys, k)
	fp.vals = append(fp.vals, afxdp.FastPathValue{DstMAC: d.srv.MAC, SrcMAC: localMAC, Gen: fp.gen, Slot: d.srv.Slot})
}

// fpSlot is the cache slot of a key.
func fpSlot(k afxdp.FastPathKey) uint32 {
	h := uint64(k.Service) * 0x9e3779b97f4a7c15
	h = (h ^ binary.LittleEndian.Uint64(k.Client[0:8])) * 0xff51afd7ed558ccd
	h ^= h >> 32
	h = (h ^ binary.LittleEndian.Uint64(k.Client[8:16])) * 0xff51afd7ed558ccd
	h ^= h >> 32
	h *= 0xc4ceb9fe1a85ec53
	return uint32(h>>40) & (fpCacheSize - 1)
}

// processBatch runs Process on every frame of descs and reorders descs so that the
// frames to transmit come first; it returns their number and counts the batch in bc.
func (w *Worker) processBatch(snap *tables.Snapshot, now uint32, descs []Desc, bc *batchCounts) int {
	ntx := 0
	var dec decision
	for i, d := range descs {
		f := w.port.Frame(d)
		var src [6]byte
		if len(f) >= 12 {
			src = [6]byte(f[6:12])
		}
		r := process(snap, w.localMAC, now, f, &dec)
		tv := tunnelSent
		if r == Forwarded && dec.srv.Encap != tables.EncapNone {
			d, tv, r = w.encapsulate(d, &dec, src)
			if tv != tunnelDrop {
				bc.tun[tv]++
			}
		}
		bc.reasons[r]++
		if r == Forwarded && tv == tunnelTooBig {
			descs[i], descs[ntx] = descs[ntx], d
			w.slots[ntx] = 0
			ntx++
			continue
		}
		if r == Forwarded {
			if dec.icmp != ICMPNone {
				bc.icmp[dec.icmp]++
			}
			descs[i], descs[ntx] = descs[ntx], d
			w.slots[ntx] = dec.srv.Slot
			ntx++
			if w.fp != nil {
				w.fp.record(&dec, w.localMAC, now)
			}
		}
	}
	return ntx
}
