package tables

import (
	"sync"
	"sync/atomic"
)

// slotsPerBucket is the associativity of the affinity table.
const slotsPerBucket = 8

// MaxAffinityCap bounds ServiceSpec.AffinityCap (40 bytes per slot: 2.5 GiB).
const MaxAffinityCap = 1 << 26

// seqReadTries bounds how often a reader retries a slot that a writer holds
// before treating it as a miss (the packet is then picked by Maglev).
const seqReadTries = 4

// Affinity is the source-IP persistence table of one service: a fixed-size,
// set-associative hash table keyed by the 16-byte client address. A client
// hashes to one bucket of 8 slots; each slot holds the client, the server it
// was given (an identity by name, stable across snapshots), the server's
// Generation at the time and the time the client was last seen.
//
// Capacity and what happens when full: the table never grows. A new client
// takes, in order of preference, the slot of its own stale entry, an empty
// slot, an expired slot of its bucket (counted in Expired), or else a live
// slot of its bucket whose client is then forgotten (counted in Evictions;
// that client is picked by Maglev again, which gives it the same server
// unless the server set changed): the least recently seen unconfirmed one,
// else the least recently seen established one idle for more than
// [ActiveWindow] seconds. A bucket whose eight clients are all established
// and active takes no new client (counted in Refused; the newcomer is served
// by Maglev alone until a slot frees).
//
// Admission: a client is unconfirmed until it is seen again, with a second
// packet (or recorded by Touch or the HA sync, which only carry clients seen
// before). A flood of one-packet sources, spoofed SYNs or UDP
// from random addresses, therefore only ever replaces other unconfirmed
// entries or idle ones, never a live established media client. (Katran's
// per-CPU LRU connection table and Maglev's connection tracking table let a
// flood push out the least recently used flows and rely on consistent
// hashing to send them to the same server again, which fails exactly when
// the server set changes during the flood; confirmation keeps them.)
//
// Memory: about 40 bytes per slot, so the default DefaultAffinityCap
// (65536 slots) takes 2.5 MiB per service with persistence. The table is
// kept by every snapshot that carries a service of the same name, unless the
// capacity changes (then a new, empty table starts).
//
// Concurrency: many workers read and write it at once with no lock. Every
// slot field is an atomic word and every slot carries its own sequence number
// (a seqlock): a writer takes a slot by a compare-and-swap of its even
// sequence s to s+1, stores the fields, and releases it by storing s+2. A
// reader loads the sequence, the fields, and the sequence again, and uses the
// fields only when both loads gave the same even value. Go's atomics are
// sequentially consistent, so if any field load observed a store of a
// writer, that writer's CAS precedes it and the reader's second sequence load
// sees an odd or larger value: readers never use a torn key/value pair. A
// writer that loses the CAS gives up rather than wait (the choice is simply
// not recorded: FullDrops); a reader that keeps finding a slot held treats it
// as a miss. Two workers inserting the same new client at the same instant
// may record it twice in its bucket; lookups use the first copy and the
// other ages out. Nothing here allocates after construction.
type Affinity struct {
	buckets []bucket
	mask    uint64

	entries   atomic.Int64
	inserts   atomic.Uint64
	evictions atomic.Uint64
	refused   atomic.Uint64
	fullDrops atomic.Uint64
	expired   atomic.Uint64

	mu     sync.Mutex // guards ids and nextID; used by Build only
	ids    map[string]uint32
	nextID uint32
}

type bucket [slotsPerBucket]slot

type slot struct {
	seq atomic.Uint64
	k0  atomic.Uint64
	k1  atomic.Uint64
	val atomic.Uint64 // server id (low 32 bits, 0 = empty) | generation << 32
	t   atomic.Uint32 // last seen, caller's seconds
	// confirmed is 1 once the client was seen twice (or came from Touch or the
	// HA sync); it fills the slot's padding.
	confirmed atomic.Uint32
}

// slotView is a consistent copy of a slot.
type slotView struct {
	seq       uint64
	k0, k1    uint64
	val       uint64
	t         uint32
	confirmed bool
}

// ActiveWindow is how long, in seconds, an established (confirmed) client
// counts as active: one seen more recently is never evicted for a newcomer.
const ActiveWindow = 10

// newAffinity makes a table of at least capacity slots (rounded up to a power
// of two, at least one bucket).
func newAffinity(capacity int) *Affinity {
	nb := newAffinityCapacity(capacity) / slotsPerBucket
	return &Affinity{
		buckets: make([]bucket, nb),
		mask:    uint64(nb - 1),
		ids:     make(map[string]uint32),
	}
}

// capacity returns the number of slots.
func (a *Affinity) capacity() int { return len(a.buckets) * slotsPerBucket }

// idFor returns the identity of the server named name, assigning one on first
// use. Identities are never reused within a table. Build only.
func (a *Affinity) idFor(name string) uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	id, ok := a.ids[name]
	if !ok {
		a.nextID++
		id = a.nextID
		a.ids[name] = id
	}
	return id
}

// load reads slot s consistently; ok is false if a writer held it on every try.
func (s *slot) load() (v slotView, ok bool) {
	for range seqReadTries {
		v.seq = s.seq.Load()
		if v.seq&1 != 0 {
			continue
		}
		v.k0 = s.k0.Load()
		v.k1 = s.k1.Load()
		v.val = s.val.Load()
		v.t = s.t.Load()
		v.confirmed = s.confirmed.Load() != 0
		if s.seq.Load() == v.seq {
			return v, true
		}
	}
	return slotView{}, false
}

// store writes the slot if its sequence is still seq (nobody wrote it since
// it was read); it reports whether it did.
func (s *slot) store(seq, k0, k1, val uint64, t uint32, confirmed bool) bool {
	if !s.seq.CompareAndSwap(seq, seq+1) {
		return false
	}
	s.k0.Store(k0)
	s.k1.Store(k1)
	s.val.Store(val)
	s.t.Store(t)
	s.confirmed.Store(b2u(confirmed))
	s.seq.Store(seq + 2)
	return true
}

// touch sets the last-seen time of the slot, and marks it confirmed, if its
// sequence is still seq; it reports whether it wrote. Losing the race is
// harmless: someone else just wrote the slot.
func (s *slot) touch(seq uint64, t uint32) bool {
	if !s.seq.CompareAndSwap(seq, seq+1) {
		return false
	}
	s.t.Store(t)
	s.confirmed.Store(1)
	s.seq.Store(seq + 2)
	return true
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// expired reports whether an entry last seen at t is older than timeout
// seconds at now. A t slightly ahead of now (another worker's clock read
// later) is fresh.
func expired(t, now, timeout uint32) bool {
	age := int32(now - t)
	return age > 0 && uint32(age) > timeout
}

// bucketFor returns the bucket of a client hash. The Maglev table uses h mod
// M; the bucket uses a remix of h so the two are independent.
func (a *Affinity) bucketFor(h uint64) *bucket {
	return &a.buckets[mum(h^p0, p3)&a.mask]
}

// Kinds of slot a new entry goes into, in order of preference.
const (
	kindOwn     = iota // the client's own (stale) entry
	kindEmpty          // never used
	kindExpired        // another client's expired entry
	kindLive           // another client's live entry: an eviction
	kindRefused        // every other slot holds an active established client
	kindNone           // every slot was held by a writer
)

// probe is the result of one scan of a bucket for a client.
type probe struct {
	slot int      // the client's slot when kind == kindOwn, else the victim
	kind int      // kindOwn .. kindNone
	view slotView // that slot as read
}

// scan looks for key (k0, k1) in b and, in the same pass, chooses where a new
// entry for it would go: its own slot, else the first empty slot, else the
// first expired one, else the least recently seen unconfirmed one, else the
// least recently seen established one idle for more than ActiveWindow, else
// none (kindRefused).
func (b *bucket) scan(k0, k1 uint64, now, timeout uint32) probe {
	p := probe{slot: -1, kind: kindNone}
	var oldest int32
	oldestConfirmed := false
	held := false
	for i := range b {
		v, ok := b[i].load()
		if !ok {
			held = true
			continue
		}
		switch {
		case v.val != 0 && v.k0 == k0 && v.k1 == k1:
			return probe{slot: i, kind: kindOwn, view: v}
		case p.kind <= kindEmpty:
			// keep the first empty slot; still looking for the key
		case v.val == 0:
			p = probe{slot: i, kind: kindEmpty, view: v}
		case p.kind <= kindExpired:
		case expired(v.t, now, timeout):
			p = probe{slot: i, kind: kindExpired, view: v}
		default:
			age := int32(now - v.t)
			if v.confirmed && age <= ActiveWindow {
				continue // active and established: never a victim
			}
			// An unconfirmed victim beats a confirmed one; then the oldest.
			if p.kind != kindLive || (oldestConfirmed && !v.confirmed) ||
				(oldestConfirmed == v.confirmed && age > oldest) {
				p, oldest, oldestConfirmed = probe{slot: i, kind: kindLive, view: v}, age, v.confirmed
			}
		}
	}
	if p.kind == kindNone && !held {
		p.kind = kindRefused
	}
	return p
}

// insert records key -> val at now in the slot p chose and reports whether it
// did (false: every candidate was an active established client, counted as
// refused, or the slot was being written by another worker, counted as a full
// drop). confirmed marks the entry established at once (Touch, HA sync).
func (a *Affinity) insert(b *bucket, p probe, k0, k1, val uint64, now uint32, confirmed bool) bool {
	if p.kind == kindRefused {
		a.refused.Add(1)
		return false
	}
	if p.kind == kindNone || !b[p.slot].store(p.view.seq, k0, k1, val, now, confirmed) {
		a.fullDrops.Add(1)
		return false
	}
	a.inserts.Add(1)
	switch p.kind {
	case kindEmpty:
		a.entries.Add(1)
	case kindExpired:
		a.expired.Add(1)
	case kindLive:
		a.evictions.Add(1)
	}
	return true
}

// stats returns the counters.
func (a *Affinity) stats() AffinityStats {
	return AffinityStats{
		Entries:   int(a.entries.Load()),
		Capacity:  a.capacity(),
		Inserts:   a.inserts.Load(),
		Evictions: a.evictions.Load(),
		Refused:   a.refused.Load(),
		FullDrops: a.fullDrops.Load(),
		Expired:   a.expired.Load(),
	}
}

// count returns the number of unexpired entries with value val.
func (a *Affinity) count(val uint64, now, timeout uint32) int {
	n := 0
	for bi := range a.buckets {
		b := &a.buckets[bi]
		for i := range b {
			v, ok := b[i].load()
			if ok && v.val == val && !expired(v.t, now, timeout) {
				n++
			}
		}
	}
	return n
}

func packVal(id, gen uint32) uint64 { return uint64(id) | uint64(gen)<<32 }
