package tables

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/maglev.digest")

func TestIsPrime(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want bool
	}{{0, false}, {1, false}, {2, true}, {3, true}, {4, false}, {9, false}, {25, false}, {49, false}, {251, true},
		{65537, true}, {65535, false}, {131071, true}, {131073, false}, {16777213, true}, {16777215, false}} {
		if got := IsPrime(tc.n); got != tc.want {
			t.Errorf("IsPrime(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

func TestMaglevDistribution(t *testing.T) {
	const clients = 100_000
	for _, tc := range []struct {
		name    string
		weights map[string]uint32
		v6      bool
	}{
		{"100/100", map[string]uint32{"HT1": 100, "HT2": 100}, false},
		{"100/300/50", map[string]uint32{"A": 100, "B": 300, "C": 50}, false},
		{"100/300/50 IPv6", map[string]uint32{"A": 100, "B": 300, "C": 50}, true},
		{"1/1/1/1/65535", map[string]uint32{"a": 1, "b": 1, "c": 1, "d": 1, "e": 65535}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var names []string
			var sum float64
			for n, w := range tc.weights {
				names = append(names, n)
				sum += float64(w)
			}
			snap := mustBuild(t, Spec{HashSeed: testSeed, Services: []ServiceSpec{trafficService(0, tc.weights, names...)}}, nil)
			svc := snap.Service("Harmonic_Traffic")

			// Table entries: within one entry per server of the exact share.
			entries := map[string]int{}
			for _, idx := range svc.table {
				entries[svc.Servers[idx].Name]++
			}
			m := float64(len(svc.table))
			for n, w := range tc.weights {
				want := m * float64(w) / sum
				if d := math.Abs(float64(entries[n]) - want); d > float64(len(names)) {
					t.Errorf("%s: %d table entries, want %.1f (weight %d)", n, entries[n], want, w)
				}
			}

			// Clients: each server's share within 1 percentage point of its weight share.
			got := map[string]int{}
			for i := range clients {
				srv, v := svc.Pick(clientAddr(i, tc.v6), 1)
				if v != VerdictNew {
					t.Fatalf("Pick verdict %v, want new", v)
				}
				got[srv.Name]++
			}
			for n, w := range tc.weights {
				share, want := float64(got[n])/clients, float64(w)/sum
				t.Logf("%s weight %d: %.4f of clients (want %.4f), %d table entries", n, w, share, want, entries[n])
				if math.Abs(share-want) > 0.01 {
					t.Errorf("%s: %.4f of clients, want %.4f +- 0.01", n, share, want)
				}
			}
		})
	}
}

// tableNames maps each Maglev entry to its server's name.
func tableNames(svc *Service) []string {
	out := make([]string, len(svc.table))
	for i, idx := range svc.table {
		out[i] = svc.Servers[idx].Name
	}
	return out
}

func TestMaglevDisruption(t *testing.T) {
	for _, n := range []int{2, 3, 10, 100, 1000} {
		names := serverNames(n)
		before := mustBuild(t, Spec{HashSeed: testSeed, Services: []ServiceSpec{trafficService(0, nil, names...)}}, nil)
		a := tableNames(before.Services()[0])
		for _, removed := range []int{0, n / 2, n - 1} {
			rest := append(append([]string(nil), names[:removed]...), names[removed+1:]...)
			after := mustBuild(t, Spec{HashSeed: testSeed, Services: []ServiceSpec{trafficService(0, nil, rest...)}}, nil)
			b := tableNames(after.Services()[0])
			moved := 0
			for i := range a {
				if a[i] != b[i] {
					moved++
				}
			}
			frac, limit := float64(moved)/float64(len(a)), 1/float64(n)+0.01
			t.Logf("N=%d remove %s: %.4f of entries moved (limit %.4f)", n, names[removed], frac, limit)
			if frac > limit {
				t.Errorf("N=%d remove %s: %.4f of entries moved, want <= %.4f", n, names[removed], frac, limit)
			}
		}
	}
}

func TestMaglevSeedAndOrder(t *testing.T) {
	names := serverNames(10)
	s1 := mustBuild(t, Spec{HashSeed: 1, Services: []ServiceSpec{trafficService(0, nil, names...)}}, nil)
	s2 := mustBuild(t, Spec{HashSeed: 2, Services: []ServiceSpec{trafficService(0, nil, names...)}}, nil)
	if tableDigest(s1) == tableDigest(s2) {
		t.Error("two seeds gave the same table")
	}
	// Config order of the servers does not change which server an entry names.
	rev := make([]string, len(names))
	for i, n := range names {
		rev[len(names)-1-i] = n
	}
	s3 := mustBuild(t, Spec{HashSeed: 1, Services: []ServiceSpec{trafficService(0, nil, rev...)}}, nil)
	if strings.Join(tableNames(s1.Services()[0]), ",") != strings.Join(tableNames(s3.Services()[0]), ",") {
		t.Error("reordering the servers in the config changed the table")
	}
}

// digestSpecs are the inputs of the cross-process and golden digests.
func digestSpecs() []Spec {
	w := map[string]uint32{"A": 100, "B": 300, "C": 50}
	v6 := trafficService(5*time.Minute, nil, serverNames(7)...)
	v6.Name, v6.VIP = "v6", netip.MustParseAddr("2001:db8::110")
	small := trafficService(0, nil, "x", "y", "z")
	small.Name, small.VIP, small.MaglevSize = "small", netip.MustParseAddr("192.0.2.1"), 251
	return []Spec{
		{HashSeed: testSeed, Services: []ServiceSpec{trafficService(0, nil, "HT1", "HT2"), mgmtService()}},
		{HashSeed: 0, Services: []ServiceSpec{trafficService(0, w, "A", "B", "C")}},
		{HashSeed: 0xdeadbeefcafef00d, Services: []ServiceSpec{trafficService(0, nil, serverNames(100)...), v6, small}},
	}
}

// tableDigest is SHA-256 over every service's Maglev table (as little-endian
// uint16 server indices, with the server names) and the picks of 1000
// IPv4 and 1000 IPv6 clients.
func tableDigest(s *Snapshot) string {
	h := sha256.New()
	var b [8]byte
	for _, svc := range s.Services() {
		h.Write([]byte(svc.Name))
		for _, srv := range svc.Servers {
			h.Write([]byte(srv.Name))
			h.Write([]byte{0})
		}
		for _, idx := range svc.table {
			binary.LittleEndian.PutUint16(b[:2], idx)
			h.Write(b[:2])
		}
		for i := range 2000 {
			k0, k1 := addrKey(clientAddr(i*7919, i%2 == 1))
			binary.LittleEndian.PutUint64(b[:], hash128(s.seed, k0, k1))
			h.Write(b[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func allDigests(t testing.TB) string {
	var lines []string
	for i, spec := range digestSpecs() {
		lines = append(lines, fmt.Sprintf("spec%d %s", i, tableDigest(mustBuild(t, spec, nil))))
	}
	return strings.Join(lines, "\n") + "\n"
}

const digestEnv = "MEDIALB_TABLES_PRINT_DIGEST"

// TestPrintDigest is the child half of TestDigestAcrossProcesses.
func TestPrintDigest(t *testing.T) {
	if os.Getenv(digestEnv) != "1" {
		t.Skip("child process of TestDigestAcrossProcesses only")
	}
	fmt.Print("DIGEST-BEGIN\n" + allDigests(t) + "DIGEST-END\n")
}

func TestDigestAcrossProcesses(t *testing.T) {
	want := allDigests(t)
	for run := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPrintDigest$", "-test.count=1")
		cmd.Env = append(os.Environ(), digestEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child %d: %v\n%s", run, err, out)
		}
		s := string(out)
		i, j := strings.Index(s, "DIGEST-BEGIN\n"), strings.Index(s, "DIGEST-END\n")
		if i < 0 || j < i {
			t.Fatalf("child %d printed no digest:\n%s", run, out)
		}
		if got := s[i+len("DIGEST-BEGIN\n") : j]; got != want {
			t.Errorf("child %d digest:\n%s\nthis process:\n%s", run, got, want)
		}
	}
}

// TestDigestGolden pins the hash and Maglev algorithms: a change here means
// nodes running different versions pick different servers for the same
// client. Rewrite with -update only on purpose, and say so in the release notes.
func TestDigestGolden(t *testing.T) {
	path := filepath.Join("testdata", "maglev.digest")
	got := allDigests(t)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden digest: %v (run go test -run TestDigestGolden -update once)", err)
	}
	if got != string(want) {
		t.Errorf("digest changed:\n%s\ngolden:\n%s", got, want)
	}
}

func TestHashKnownValues(t *testing.T) {
	// hash128 must equal hashBytes over the same 16 bytes.
	for i := range 100 {
		a := clientAddr(i*104729, i%2 == 0)
		b := a.As16()
		k0, k1 := addrKey(a)
		if x, y := hash128(99, k0, k1), hashBytes(99, b[:]); x != y {
			t.Fatalf("%s: hash128 %#x != hashBytes %#x", a, x, y)
		}
		if x, y := hashAddr(99, a), hashAddr(99, netip.AddrFrom16(b)); x != y {
			t.Fatalf("%s: IPv4 and its mapped form hash differently", a)
		}
	}
	if hashString(1, "HT1") == hashString(1, "HT2") || hashString(1, "HT1") == hashString(2, "HT1") {
		t.Error("hash ignores its input or seed")
	}
}

func BenchmarkMaglevBuild(b *testing.B) {
	for _, n := range []int{2, 100, 1000} {
		b.Run(fmt.Sprintf("servers=%d/M=65537", n), func(b *testing.B) {
			names := serverNames(n)
			members := make([]maglevMember, n)
			for i := range members {
				members[i] = maglevMember{name: names[i], index: uint16(i), weight: 100}
			}
			b.ReportAllocs()
			for b.Loop() {
				buildMaglev(testSeed, DefaultMaglevSize, members)
			}
		})
	}
	b.Run("servers=1000/M=65537/weighted", func(b *testing.B) {
		names := serverNames(1000)
		members := make([]maglevMember, len(names))
		for i := range members {
			members[i] = maglevMember{name: names[i], index: uint16(i), weight: uint32(1 + i%300)}
		}
		b.ReportAllocs()
		for b.Loop() {
			buildMaglev(testSeed, DefaultMaglevSize, members)
		}
	})
}
