package tables

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pickSpec builds a Spec with one traffic service.
func pickSpec(ss ServiceSpec) Spec { return Spec{HashSeed: testSeed, Services: []ServiceSpec{ss}} }

// clientOn returns a client address whose Maglev pick in svc is the server
// named name (and a later one when skip > 0).
func clientOn(t *testing.T, svc *Service, name string, skip int) netip.Addr {
	t.Helper()
	for i := range 100000 {
		a := clientAddr(i, false)
		if srv, _ := svc.pickNew(hashAddr(svc.seed, a)); srv != nil && srv.Name == name {
			if skip == 0 {
				return a
			}
			skip--
		}
	}
	t.Fatalf("no client maps to %s", name)
	return netip.Addr{}
}

func expectPick(t *testing.T, svc *Service, src netip.Addr, now uint32, wantName string, wantV Verdict) {
	t.Helper()
	srv, v := svc.Pick(src, now)
	name := "<nil>"
	if srv != nil {
		name = srv.Name
	}
	if name != wantName || v != wantV {
		t.Fatalf("Pick(%s, %d) = %s, %v; want %s, %v", src, now, name, v, wantName, wantV)
	}
}

func TestPickNoPersistence(t *testing.T) {
	svc := mustBuild(t, pickSpec(trafficService(0, nil, "HT1", "HT2")), nil).Services()[0]
	src := clientOn(t, svc, "HT2", 0)
	for now := uint32(0); now < 3; now++ {
		expectPick(t, svc, src, now, "HT2", VerdictNew)
	}
	if st := svc.AffinityStats(); st != (AffinityStats{}) {
		t.Errorf("stats without persistence: %+v", st)
	}
}

func TestPersistence(t *testing.T) {
	const timeout = 300
	base := trafficService(timeout*time.Second, nil, "HT1", "HT2")

	t.Run("across ports and protocols", func(t *testing.T) {
		s1 := mustBuild(t, pickSpec(base), nil)
		svc := s1.Services()[0]
		src := clientOn(t, svc, "HT1", 0)
		expectPick(t, svc, src, 10, "HT1", VerdictNew)
		// A server is added; this client's Maglev pick moves to it, but
		// persistence keeps it on HT1 whatever port or protocol it uses.
		s2 := mustBuild(t, pickSpec(trafficService(timeout*time.Second, nil, "HT1", "HT2", "HT3")), s1)
		svc2 := s2.Services()[0]
		var moved netip.Addr
		for i := range 100000 {
			a := clientAddr(i, false)
			if svc.Servers[svc.table[hashAddr(testSeed, a)%65537]].Name == "HT1" &&
				svc2.Servers[svc2.table[hashAddr(testSeed, a)%65537]].Name == "HT3" {
				moved = a
				break
			}
		}
		expectPick(t, svc, moved, 10, "HT1", VerdictNew)
		for _, p := range []struct {
			proto uint8
			port  uint16
		}{{ProtoTCP, 1935}, {ProtoUDP, 1935}, {ProtoTCP, 554}, {ProtoUDP, 50000}, {ProtoTCP, 65535}} {
			got := s2.Lookup(vipTraffic, p.proto, p.port)
			if got != svc2 {
				t.Fatalf("Lookup %d/%d: %v", p.proto, p.port, got)
			}
			expectPick(t, got, moved, 11, "HT1", VerdictPersist)
		}
		// A new client with the same Maglev slot goes to HT3.
		if srv, v := svc2.Pick(clientAddr(0, true), 11); v != VerdictNew || srv == nil {
			t.Fatalf("new client: %v %v", srv, v)
		}
	})

	t.Run("drain keeps, no new clients", func(t *testing.T) {
		s1 := mustBuild(t, pickSpec(base), nil)
		svc := s1.Services()[0]
		src := clientOn(t, svc, "HT1", 0)
		expectPick(t, svc, src, 10, "HT1", VerdictNew)
		s2 := mustBuild(t, pickSpec(withServer(base, "HT1", func(s *ServerSpec) { s.State = StateDrain })), s1)
		svc2 := s2.Services()[0]
		expectPick(t, svc2, src, 20, "HT1", VerdictPersist)
		expectPick(t, svc2, clientOn(t, svc, "HT1", 1), 20, "HT2", VerdictNew)
		if n := svc2.ActiveClients(svc2.Servers[0], 20); n != 1 {
			t.Errorf("ActiveClients(HT1) = %d, want 1", n)
		}
	})

	t.Run("weight 0 keeps", func(t *testing.T) {
		s1 := mustBuild(t, pickSpec(base), nil)
		svc := s1.Services()[0]
		src := clientOn(t, svc, "HT1", 0)
		expectPick(t, svc, src, 10, "HT1", VerdictNew)
		svc2 := mustBuild(t, pickSpec(withServer(base, "HT1", func(s *ServerSpec) { s.Weight = 0 })), s1).Services()[0]
		expectPick(t, svc2, src, 20, "HT1", VerdictPersist)
		expectPick(t, svc2, clientOn(t, svc, "HT1", 1), 20, "HT2", VerdictNew)
	})

	for _, tc := range []struct {
		name string
		mod  func(*ServerSpec)
	}{
		{"halt drops", func(s *ServerSpec) { s.State, s.Generation = StateHalt, s.Generation+1 }},
		{"down drops", func(s *ServerSpec) { s.State, s.Generation = StateDown, s.Generation+1 }},
		{"halt without generation bump drops", func(s *ServerSpec) { s.State = StateHalt }},
		{"unresolved MAC drops", func(s *ServerSpec) { s.HasMAC = false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s1 := mustBuild(t, pickSpec(base), nil)
			svc := s1.Services()[0]
			src := clientOn(t, svc, "HT1", 0)
			expectPick(t, svc, src, 10, "HT1", VerdictNew)
			s2 := mustBuild(t, pickSpec(withServer(base, "HT1", tc.mod)), s1)
			expectPick(t, s2.Services()[0], src, 20, "HT2", VerdictNew)
			// Back online: the client stays where it went.
			s3 := mustBuild(t, pickSpec(withServer(base, "HT1", func(s *ServerSpec) { s.Generation = s2.Services()[0].Servers[0].Generation })), s2)
			expectPick(t, s3.Services()[0], src, 30, "HT2", VerdictPersist)
		})
	}

	t.Run("generation bump between snapshots", func(t *testing.T) {
		// halt then online before this client's next packet: the entry
		// recorded under the old generation is stale, Maglev picks again.
		s1 := mustBuild(t, pickSpec(base), nil)
		svc := s1.Services()[0]
		src := clientOn(t, svc, "HT1", 0)
		expectPick(t, svc, src, 10, "HT1", VerdictNew)
		s2 := mustBuild(t, pickSpec(withServer(base, "HT1", func(s *ServerSpec) { s.Generation = 7 })), s1)
		expectPick(t, s2.Services()[0], src, 11, "HT1", VerdictNew)
		expectPick(t, s2.Services()[0], src, 12, "HT1", VerdictPersist)
	})

	t.Run("server removed", func(t *testing.T) {
		s1 := mustBuild(t, pickSpec(base), nil)
		src := clientOn(t, s1.Services()[0], "HT1", 0)
		expectPick(t, s1.Services()[0], src, 10, "HT1", VerdictNew)
		s2 := mustBuild(t, pickSpec(trafficService(timeout*time.Second, nil, "HT2")), s1)
		expectPick(t, s2.Services()[0], src, 11, "HT2", VerdictNew)
		// HT1 comes back (same name, same generation): the client stays on HT2.
		s3 := mustBuild(t, pickSpec(base), s2)
		expectPick(t, s3.Services()[0], src, 12, "HT2", VerdictPersist)
	})

	t.Run("timeout and refresh", func(t *testing.T) {
		s1 := mustBuild(t, pickSpec(base), nil)
		svc := s1.Services()[0]
		// A client whose Maglev pick changes after HT3 joins, so an
		// expired entry shows as a different server.
		s2 := mustBuild(t, pickSpec(trafficService(timeout*time.Second, nil, "HT1", "HT2", "HT3")), s1)
		svc2 := s2.Services()[0]
		var src netip.Addr
		for i := range 100000 {
			a := clientAddr(i, false)
			if srv, _ := svc2.pickNew(hashAddr(testSeed, a)); srv.Name == "HT3" {
				src = a
				break
			}
		}
		first, _ := svc.pickNew(hashAddr(testSeed, src))
		expectPick(t, svc, src, 1000, first.Name, VerdictNew)
		expectPick(t, svc2, src, 1000+timeout, first.Name, VerdictPersist) // age == timeout: alive, refreshed
		expectPick(t, svc2, src, 1000+2*timeout, first.Name, VerdictPersist)
		expectPick(t, svc2, src, 1000+3*timeout+1, "HT3", VerdictNew) // idle timeout+1 s: expired
		if n := svc2.ActiveClients(svc2.Servers[2], 1000+3*timeout+1); n != 1 {
			t.Errorf("ActiveClients(HT3) = %d, want 1", n)
		}
		if n := svc2.ActiveClients(svc2.Servers[2], 1000+4*timeout+2); n != 0 {
			t.Errorf("ActiveClients(HT3) after expiry = %d, want 0", n)
		}
		// A clock a second behind another worker's does not expire entries.
		expectPick(t, svc2, src, 1000+3*timeout, "HT3", VerdictPersist)
	})

	t.Run("fallback and no server", func(t *testing.T) {
		down := withServer(withServer(base, "HT1", func(s *ServerSpec) { s.State = StateDown }), "HT2", func(s *ServerSpec) { s.State = StateHalt })
		svc := mustBuild(t, pickSpec(down), nil).Services()[0]
		expectPick(t, svc, clientAddr(1, false), 1, "<nil>", VerdictNoServer)
		down.Fallback = &ServerSpec{Name: "sorry", Addr: netip.MustParseAddr("192.168.94.200"), HasMAC: true}
		svc = mustBuild(t, pickSpec(down), nil).Services()[0]
		expectPick(t, svc, clientAddr(1, false), 1, "sorry", VerdictFallback)
		if st := svc.AffinityStats(); st.Inserts != 0 {
			t.Errorf("fallback pick recorded: %+v", st)
		}
		if svc.Fallback.Index != -1 || svc.ActiveClients(svc.Fallback, 1) != 0 {
			t.Errorf("fallback: %+v", svc.Fallback)
		}
	})

	t.Run("layer 7 ignores MAC", func(t *testing.T) {
		svc := mustBuild(t, Spec{Services: []ServiceSpec{mgmtService()}}, nil).Services()[0]
		srv, v := svc.Pick(netip.MustParseAddr("203.0.113.9"), 5)
		if srv == nil || v != VerdictNew {
			t.Fatalf("Pick = %v, %v", srv, v)
		}
		expectPick(t, svc, netip.MustParseAddr("203.0.113.9"), 6, srv.Name, VerdictPersist)
	})

	t.Run("capacity change makes a new table", func(t *testing.T) {
		s1 := mustBuild(t, pickSpec(base), nil)
		src := clientAddr(5, false)
		s1.Services()[0].Pick(src, 1)
		bigger := base
		bigger.AffinityCap = 4 * DefaultAffinityCap
		s2 := mustBuild(t, pickSpec(bigger), s1)
		if s2.Services()[0].aff == s1.Services()[0].aff || s2.Services()[0].AffinityStats().Capacity != 4*DefaultAffinityCap {
			t.Fatal("affinity table kept across a capacity change")
		}
		s3 := mustBuild(t, pickSpec(bigger), s2)
		if s3.Services()[0].aff != s2.Services()[0].aff {
			t.Fatal("affinity table not kept across a rebuild")
		}
	})
}

// bucketClients returns n clients of svc that hash to the same affinity bucket.
func bucketClients(svc *Service, n int) []netip.Addr {
	var out []netip.Addr
	var want *bucket
	for i := 0; len(out) < n; i++ {
		a := clientAddr(i, false)
		b := svc.aff.bucketFor(hashAddr(svc.seed, a))
		if want == nil {
			want = b
		}
		if b == want {
			out = append(out, a)
		}
	}
	return out
}

func TestAffinityFull(t *testing.T) {
	ss := trafficService(100*time.Second, nil, "HT1", "HT2")
	ss.AffinityCap = 1000 // rounds up to 128 buckets of 8 = 1024 slots
	svc := mustBuild(t, pickSpec(ss), nil).Services()[0]
	if c := svc.AffinityStats().Capacity; c != 1024 {
		t.Fatalf("capacity %d, want 1024", c)
	}
	cl := bucketClients(svc, slotsPerBucket+2)
	// Fill one bucket, client i seen at time 10+i.
	for i := range slotsPerBucket {
		if _, v := svc.Pick(cl[i], uint32(10+i)); v != VerdictNew {
			t.Fatalf("client %d: %v", i, v)
		}
	}
	st := svc.AffinityStats()
	if st.Entries != slotsPerBucket || st.Inserts != slotsPerBucket || st.Evictions != 0 {
		t.Fatalf("after filling a bucket: %+v", st)
	}
	// Client 0 is seen again: client 1 is now the least recently seen.
	if _, v := svc.Pick(cl[0], 20); v != VerdictPersist {
		t.Fatalf("client 0 again: %v", v)
	}
	// A ninth client evicts client 1.
	if _, v := svc.Pick(cl[slotsPerBucket], 21); v != VerdictNew {
		t.Fatal("ninth client not new")
	}
	st = svc.AffinityStats()
	if st.Evictions != 1 || st.Entries != slotsPerBucket {
		t.Fatalf("after the ninth client: %+v", st)
	}
	// Everyone but client 1 is still there ...
	for i := range slotsPerBucket + 1 {
		if i == 1 {
			continue
		}
		if _, v := svc.Pick(cl[i], 22); v != VerdictPersist {
			t.Errorf("client %d: %v, want persist", i, v)
		}
	}
	// ... and client 1 comes back as new; every slot now holds an established
	// client (seen twice) active within ActiveWindow: it is refused.
	if _, v := svc.Pick(cl[1], 23); v != VerdictNew {
		t.Errorf("evicted client 1: %v, want new", v)
	}
	if st = svc.AffinityStats(); st.Evictions != 1 || st.Refused != 1 || st.Entries != slotsPerBucket {
		t.Fatalf("after client 1 returned: %+v", st)
	}
	// Once they have been idle for more than ActiveWindow, it evicts one of them.
	if _, v := svc.Pick(cl[1], 23+ActiveWindow); v != VerdictNew {
		t.Errorf("client 1 later: %v, want new", v)
	}
	if st = svc.AffinityStats(); st.Evictions != 2 || st.Entries != slotsPerBucket {
		t.Fatalf("after client 1 returned later: %+v", st)
	}
	// Much later everything has expired: a new client takes an expired slot
	// (counted as expired, not evicted).
	if _, v := svc.Pick(cl[slotsPerBucket+1], 500); v != VerdictNew {
		t.Fatal("tenth client not new")
	}
	st = svc.AffinityStats()
	if st.Evictions != 2 || st.Expired != 1 || st.FullDrops != 0 {
		t.Fatalf("expired reuse: %+v", st)
	}
	// Other buckets are untouched: a bucket never spills.
	if st.Entries != slotsPerBucket {
		t.Fatalf("entries %d, want %d", st.Entries, slotsPerBucket)
	}
}

func TestAffinityFullManyClients(t *testing.T) {
	// 10x more clients than slots: the table stays bounded, every pick is
	// still served and counted.
	ss := trafficService(time.Hour, nil, "HT1", "HT2")
	ss.AffinityCap = 256
	svc := mustBuild(t, pickSpec(ss), nil).Services()[0]
	for i := range 2560 {
		if srv, _ := svc.Pick(clientAddr(i, true), 1); srv == nil {
			t.Fatal("nil server")
		}
	}
	st := svc.AffinityStats()
	t.Logf("%+v", st)
	if st.Entries != 256 || st.Inserts != 2560 || st.Evictions != 2560-256 {
		t.Fatalf("stats %+v, want 256 entries, 2560 inserts, 2304 evictions", st)
	}
}

func TestPickAllocs(t *testing.T) {
	snap := mustBuild(t, Spec{HashSeed: testSeed, Services: []ServiceSpec{mgmtService(), trafficService(300*time.Second, nil, "HT1", "HT2")}}, nil)
	svc := snap.Service("Harmonic_Traffic")
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		i++
		svc.Pick(clientAddr(i, i%2 == 0), uint32(i/100)) // new
		svc.Pick(clientAddr(i, i%2 == 0), uint32(i/100)) // persist
		svc.Pick(clientAddr(7, false), uint32(i))        // persist with refresh
	}); n != 0 {
		t.Errorf("Pick: %v allocs per run, want 0", n)
	}
	noPersist := mustBuild(t, pickSpec(trafficService(0, nil, "HT1", "HT2")), nil).Services()[0]
	if n := testing.AllocsPerRun(1000, func() { i++; noPersist.Pick(clientAddr(i, false), 1) }); n != 0 {
		t.Errorf("Pick without persistence: %v allocs per run, want 0", n)
	}
}

// TestPickConcurrent runs Pick from many goroutines on a few contended
// buckets while snapshots are rebuilt and swapped. Every Maglev pick of a
// client is the same server (one server set), so a torn slot read (one
// client's key with another client's server) would show as a persistent
// answer that differs from the client's own pick. Run with -race.
func TestPickConcurrent(t *testing.T) {
	names := serverNames(16)
	ss := trafficService(60*time.Second, nil, names...)
	ss.AffinityCap = 64 // 8 buckets: constant eviction and contention
	var h Holder
	h.Store(mustBuild(t, pickSpec(ss), nil))
	ref := h.Load().Services()[0]
	clients := make([]netip.Addr, 512)
	want := make([]string, len(clients))
	for i := range clients {
		clients[i] = clientAddr(i*31, i%3 == 0)
		srv, _ := ref.pickNew(hashAddr(testSeed, clients[i]))
		want[i] = srv.Name
	}

	var stop atomic.Bool
	var picks, persists atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, p := 0, 0
			for ; !stop.Load(); n++ {
				svc := h.Load().Services()[0]
				i := (n*7 + g*13) % len(clients)
				srv, v := svc.Pick(clients[i], uint32(n/1000))
				if v == VerdictPersist {
					p++
				}
				if srv == nil || srv.Name != want[i] {
					select {
					case errs <- fmt.Sprintf("client %d: got %v (%v), want %s", i, srv, v, want[i]):
					default:
					}
					return
				}
			}
			picks.Add(int64(n))
			persists.Add(int64(p))
		}()
	}
	// Rebuild and swap: same servers, so picks stay the same.
	for range 20 {
		h.Store(mustBuild(t, pickSpec(ss), h.Load()))
		time.Sleep(5 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	st := h.Load().Services()[0].AffinityStats()
	t.Logf("%d picks, %d persistent; %+v", picks.Load(), persists.Load(), st)
	if persists.Load() == 0 || st.Evictions == 0 {
		t.Error("the test did not exercise persistence and eviction")
	}
}

func BenchmarkPick(b *testing.B) {
	b.Run("maglev-only", func(b *testing.B) {
		svc := mustBuild(b, pickSpec(trafficService(0, nil, "HT1", "HT2")), nil).Services()[0]
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			svc.Pick(clientAddr(i&0xffff, false), 1)
		}
	})
	b.Run("persist-hit", func(b *testing.B) {
		svc := mustBuild(b, pickSpec(trafficService(300*time.Second, nil, "HT1", "HT2")), nil).Services()[0]
		for i := range 10000 {
			svc.Pick(clientAddr(i, false), 1)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if _, v := svc.Pick(clientAddr(i%10000, false), 1); v != VerdictPersist {
				b.Fatal(v)
			}
		}
	})
	b.Run("persist-new", func(b *testing.B) {
		svc := mustBuild(b, pickSpec(trafficService(300*time.Second, nil, "HT1", "HT2")), nil).Services()[0]
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++ // 16M distinct clients: inserts, evictions once the table is full
			svc.Pick(clientAddr(i&0xffffff, true), 1)
		}
	})
}

func BenchmarkAffinityParallel(b *testing.B) {
	for _, bc := range []struct {
		name    string
		clients int
		prefill bool
	}{
		{"lookup-hit", 50000, true},
		{"insert", 1 << 24, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ss := trafficService(300*time.Second, nil, serverNames(10)...)
			ss.AffinityCap = 1 << 17
			svc := mustBuild(b, pickSpec(ss), nil).Services()[0]
			if bc.prefill {
				for i := range bc.clients {
					svc.Pick(clientAddr(i, false), 1)
				}
			}
			var seq atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seq.Add(1)) * 1_000_003
				for pb.Next() {
					i++
					svc.Pick(clientAddr(i%bc.clients, false), 1)
				}
			})
		})
	}
}

// TestSlotSeqlock hammers one slot with writers storing self-consistent
// records (k0 == k1 == id, generation == id, t == id) while readers check
// every view they accept: a torn read would mix two records.
func TestSlotSeqlock(t *testing.T) {
	var s slot
	var stop atomic.Bool
	var wg sync.WaitGroup
	var accepted, torn atomic.Int64
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := uint64(1); !stop.Load(); n++ {
				id := n*2 + uint64(w)
				v, ok := s.load()
				if !ok {
					continue
				}
				s.store(v.seq, id, id, packVal(uint32(id), uint32(id)), uint32(id), id%2 == 0)
			}
		}()
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				v, ok := s.load()
				if !ok {
					continue
				}
				accepted.Add(1)
				if v.k0 != v.k1 || v.val != packVal(uint32(v.k0), uint32(v.k0)) || v.t != uint32(v.k0) {
					torn.Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	t.Logf("%d reads accepted, seq %d", accepted.Load(), s.seq.Load())
	if torn.Load() != 0 {
		t.Fatalf("%d torn reads", torn.Load())
	}
	if accepted.Load() == 0 || s.seq.Load() < 100 {
		t.Fatal("no concurrent reads and writes happened")
	}
}

// TestAffinityFloodKeepsEstablished: a flood of one-packet sources (a million, 250
// times the table's capacity) while the server set changes does not move a single
// established client: they are never evicted, the newcomers are refused or replace
// each other.
func TestAffinityFloodKeepsEstablished(t *testing.T) {
	ss := trafficService(300*time.Second, nil, "HT1", "HT2")
	ss.AffinityCap = 4096
	snap := mustBuild(t, pickSpec(ss), nil)
	svc := snap.Services()[0]
	rng := rand.New(rand.NewPCG(1, 2))
	randAddr := func() netip.Addr {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], rng.Uint32())
		return netip.AddrFrom4(b)
	}
	// 2048 clients, each seen twice: established.
	est := map[netip.Addr]string{}
	for range 2048 {
		c := randAddr()
		svc.Pick(c, 100)
		if srv, v := svc.Pick(c, 100); v == VerdictPersist {
			est[c] = srv.Name
		}
	}
	if len(est) < 1900 {
		t.Fatalf("only %d of 2048 clients established", len(est))
	}
	// A third server: Maglev alone would now move about a third of them.
	ss.Servers = append(ss.Servers, ServerSpec{Name: "HT3", Addr: netip.MustParseAddr("192.168.94.117"),
		Weight: 100, MAC: [6]byte{2, 0, 0, 0, 0, 3}, HasMAC: true})
	svc = mustBuild(t, pickSpec(ss), snap).Services()[0]
	for i := range 1_000_000 {
		svc.Pick(randAddr(), 102+uint32(i/250_000))
	}
	lost := 0
	for c, name := range est {
		if srv, v := svc.Pick(c, 106); v != VerdictPersist || srv.Name != name {
			lost++
		}
	}
	st := svc.AffinityStats()
	if lost != 0 {
		t.Errorf("%d of %d established clients lost their server in the flood (%+v)", lost, len(est), st)
	}
	if st.Refused == 0 || st.Evictions == 0 {
		t.Errorf("stats %+v: want newcomers refused and evicting each other", st)
	}
}
