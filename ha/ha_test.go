package ha

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/tables"
)

func TestRenderKeepalived(t *testing.T) {
	base := KeepalivedSettings{
		Node: "lb1", Interface: "eth0", Peer: netip.MustParseAddr("192.168.94.3"), Priority: 150, RouterID: 51,
		Advert: 100 * time.Millisecond, FIFO: "/var/lib/medialb/ha/notify.fifo", Health: "/var/lib/medialb/ha/health",
		VIPs: []netip.Addr{netip.MustParseAddr("192.168.94.100"), netip.MustParseAddr("fd94::110"), netip.MustParseAddr("192.168.94.110")},
	}
	tests := []struct {
		name    string
		change  func(*KeepalivedSettings)
		want    []string
		notWant []string
	}{
		{"ipv4 peer", nil, []string{
			"vrrp_version 3", `notify_fifo "/var/lib/medialb/ha/notify.fifo"`, "state BACKUP", "interface eth0",
			"virtual_router_id 51", "priority 150", "advert_int 0.1\n", "nopreempt", "check_unicast_src\n", "unicast_peer {\n        192.168.94.3 min_ttl 255 max_ttl 255\n    }",
			"virtual_ipaddress {\n        192.168.94.100/32 dev eth0\n        192.168.94.110/32 dev eth0\n    }",
			"virtual_ipaddress_excluded {\n        fd94::110/128 dev eth0 -nodad preferred_lft 0\n    }",
			`file "/var/lib/medialb/ha/health"`, "weight 0", "track_file {\n        medialb_health",
		}, nil},
		{"preempt, 1.23s", func(s *KeepalivedSettings) { s.Preempt, s.Advert = true, 1230*time.Millisecond },
			[]string{"advert_int 1.23\n"}, []string{"nopreempt"}},
		{"ipv6 peer", func(s *KeepalivedSettings) { s.Peer = netip.MustParseAddr("fd94::3") },
			[]string{"virtual_ipaddress {\n        fd94::110/128 dev eth0 -nodad preferred_lft 0\n    }",
				"virtual_ipaddress_excluded {\n        192.168.94.100/32 dev eth0\n        192.168.94.110/32 dev eth0\n    }"}, nil},
		{"own source address", func(s *KeepalivedSettings) { s.Local = netip.MustParseAddr("192.168.94.2") },
			[]string{"unicast_src_ip 192.168.94.2\n"}, nil},
		{"one family", func(s *KeepalivedSettings) { s.VIPs = s.VIPs[:1]; s.Advert = time.Second },
			[]string{"advert_int 1\n"}, []string{"virtual_ipaddress_excluded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			if tt.change != nil {
				tt.change(&s)
			}
			got := RenderKeepalived(s)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in:\n%s", w, got)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("unexpected %q in:\n%s", w, got)
				}
			}
		})
	}
}

func TestParseNotify(t *testing.T) {
	tests := []struct {
		line              string
		kind, name, state string
		prio              int
		ok                bool
	}{
		{`INSTANCE "medialb" MASTER 150`, "INSTANCE", "medialb", "MASTER", 150, true},
		{`INSTANCE "medialb" BACKUP 100` + "\n", "INSTANCE", "medialb", "BACKUP", 100, true},
		{`INSTANCE "with space" FAULT 0`, "INSTANCE", "with space", "FAULT", 0, true},
		{`GROUP "g" MASTER`, "GROUP", "g", "MASTER", 0, true},
		{`INSTANCE medialb MASTER 150`, "", "", "", 0, false},
		{`INSTANCE "medialb MASTER 150`, "", "", "", 0, false},
		{`INSTANCE "medialb" MASTER x`, "", "", "", 0, false},
		{`INSTANCE "medialb"`, "", "", "", 0, false},
		{``, "", "", "", 0, false},
	}
	for _, tt := range tests {
		kind, name, state, prio, ok := ParseNotify(tt.line)
		if kind != tt.kind || name != tt.name || state != tt.state || prio != tt.prio || ok != tt.ok {
			t.Errorf("ParseNotify(%q) = %q %q %q %d %v", tt.line, kind, name, state, prio, ok)
		}
	}
}

func FuzzParseNotify(f *testing.F) {
	f.Add(`INSTANCE "medialb" MASTER 150`)
	f.Add(`INSTANCE "" STOP`)
	f.Fuzz(func(t *testing.T, line string) {
		if _, name, _, _, ok := ParseNotify(line); ok && !strings.Contains(line, `"`+name+`"`) {
			t.Errorf("name %q not quoted in %q", name, line)
		}
	})
}

func TestFrames(t *testing.T) {
	key := []byte("pair secret")
	nonce := [nonceLen]byte{1, 2, 3}
	frames := func(k []byte, n [nonceLen]byte, payloads ...string) []byte {
		var buf bytes.Buffer
		w := &frameWriter{w: bufio.NewWriter(&buf), key: k, nonce: n}
		for _, p := range payloads {
			if err := w.write(msgHello, []byte(p)); err != nil {
				t.Fatal(err)
			}
		}
		return buf.Bytes()
	}
	read := func(b []byte) ([]string, error) {
		r := &frameReader{r: bytes.NewReader(b), key: key, nonce: nonce}
		var out []string
		for {
			typ, p, err := r.read()
			if err != nil {
				return out, err
			}
			if typ != msgHello {
				t.Fatalf("type %c", typ)
			}
			out = append(out, string(p))
		}
	}
	good := frames(key, nonce, "one", "two", "")
	got, err := read(good)
	if strings.Join(got, ",") != "one,two," || !errors.Is(err, io.EOF) {
		t.Fatalf("read %q, %v", got, err)
	}
	tampered := bytes.Clone(good)
	tampered[6] ^= 1 // first payload byte
	second := frames(key, nonce, "two")
	tests := []struct {
		name string
		in   []byte
	}{
		{"wrong key", frames([]byte("other"), nonce, "one")},
		{"other connection's nonce", frames(key, [nonceLen]byte{9}, "one")},
		{"altered payload", tampered},
		{"frame 1 replayed as frame 2", append(bytes.Clone(second), second...)},
		{"frames reordered", append(bytes.Clone(good[len(frames(key, nonce, "one")):len(frames(key, nonce, "one", "two"))]), good...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := read(tt.in)
			if !errors.Is(err, errBadMAC) {
				t.Errorf("got %v, want a bad HMAC", err)
			}
		})
	}
}

func TestEntriesCodec(t *testing.T) {
	in := []tables.Entry{
		{Client: netip.MustParseAddr("10.0.0.1"), Server: "HT1", Age: 0},
		{Client: netip.MustParseAddr("2001:db8::7"), Server: "HT2", Age: 299},
		{Client: netip.MustParseAddr("10.0.0.2"), Server: "HT1", Age: 1 << 31},
	}
	name, out, err := decodeEntries(encodeEntries("Harmonic_Traffic", in))
	if err != nil || name != "Harmonic_Traffic" || len(out) != len(in) {
		t.Fatalf("decode: %q %v %v", name, out, err)
	}
	for i := range in {
		if in[i] != out[i] {
			t.Errorf("entry %d: %+v, want %+v", i, out[i], in[i])
		}
	}
	b := encodeEntries("S", in)
	for cut := range len(b) {
		if _, _, err := decodeEntries(b[:cut]); err == nil {
			t.Errorf("a payload cut at %d of %d decoded", cut, len(b))
		}
	}
}

func FuzzDecodeEntries(f *testing.F) {
	f.Add(encodeEntries("Harmonic_Traffic", []tables.Entry{{Client: netip.MustParseAddr("10.0.0.1"), Server: "HT1", Age: 3}}))
	f.Add([]byte{0, 1, 'S', 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, es, err := decodeEntries(b)
		if err != nil {
			return
		}
		name2, es2, err := decodeEntries(encodeEntries(name, es))
		if err != nil || name2 != name || len(es2) != len(es) {
			t.Fatalf("re-encoding %q %v: %q %v %v", name, es, name2, es2, err)
		}
	})
}

func TestComparePair(t *testing.T) {
	load := func(p string) *config.Config {
		c, err := config.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	primary := func() *config.Config { return load("../examples/harmonic-vos-ha-primary.yaml") }
	secondary := func() *config.Config { return load("../examples/harmonic-vos-ha-secondary.yaml") }
	tests := []struct {
		name   string
		change func(a, b *config.Config)
		want   []string
	}{
		{"the example pair agrees", func(a, b *config.Config) {}, nil},
		{"weight", func(a, b *config.Config) { b.Services[1].RealServers[0].Weight = 50 }, []string{`"Harmonic_Traffic": real server #1 differs`}},
		{"service missing", func(a, b *config.Config) { b.Services = b.Services[:1] }, []string{`"Harmonic_Traffic": only in`}},
		{"ports", func(a, b *config.Config) { b.Services[0].Ports = b.Services[0].Ports[:1] }, []string{"Ports differs"}},
		{"ha", func(a, b *config.Config) {
			b.HA.RouterID, b.HA.Secret, b.HA.Priority = 9, "x", a.HA.Priority
			b.Node.HashSeed++
		}, []string{"ha.router_id: 51 vs 9", "ha.secret differs", "ha.priority: both", "node.hash_seed"}},
		{"no ha", func(a, b *config.Config) { b.HA = nil }, []string{"has no ha section"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := primary(), secondary()
			tt.change(a, b)
			got := ComparePair(a, b)
			if len(tt.want) == 0 && len(got) > 0 {
				t.Errorf("differences: %q", got)
			}
			for _, w := range tt.want {
				found := false
				for _, g := range got {
					found = found || strings.Contains(g, w)
				}
				if !found {
					t.Errorf("no %q in %q", w, got)
				}
			}
		})
	}
}

// fakeAdmin records the states applied.
type fakeAdmin struct {
	mu     sync.Mutex
	states map[string]string
}

func (f *fakeAdmin) AdminStates() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]string{}
	for k, v := range f.states {
		m[k] = v
	}
	return m
}

func (f *fakeAdmin) ApplyAdminStates(m map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states = m
}

func (f *fakeAdmin) get(k string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.states[k]
}

// testNode is a Node without keepalived: its role is set by hand, and its sync
// channel runs on loopback.
func testNode(t *testing.T, secret, role string, holder *tables.Holder, clock uint32, admin Admin) *Node {
	n := &Node{
		opts: Options{HA: config.HA{Secret: secret}, Node: role, Tables: holder, Admin: admin,
			Clock: func() uint32 { return clock }},
		log: zerolog.Nop(), roleCh: make(chan struct{}),
	}
	n.st.Role = role
	n.healthy = true
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n
}

// link connects a (on 127.0.0.1) and b (on 127.0.0.2) over loopback.
func link(t *testing.T, a, b *Node) {
	la, lb := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	a.opts.Local, b.opts.Local = la, lb // where a reload's new syncer listens
	a.sync = listenSync(t, a, la, lb)
	b.sync = listenSync(t, b, lb, la)
	a.sync.peer, b.sync.peer = b.sync.ln.Addr().String(), a.sync.ln.Addr().String()
	for _, n := range []*Node{a, b} {
		n.sync.start(n.ctx, &n.wg)
		t.Cleanup(func() { n.Close() })
	}
}

// listenSync makes n's syncer on local (a free port) that takes connections
// from peer only; its peer's port is set by the caller.
func listenSync(t *testing.T, n *Node, local, peer netip.Addr) *syncer {
	t.Helper()
	s, err := newSyncerAt(n, netip.AddrPortFrom(local, 0), netip.AddrPortFrom(peer, 0), n.opts.HA.Secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func trafficSnapshot(t *testing.T, prev *tables.Snapshot, servers ...string) *tables.Snapshot {
	ss := tables.ServiceSpec{Name: "Harmonic_Traffic", VIP: netip.MustParseAddr("192.168.94.110"),
		Ports: []tables.PortRange{{Lo: 1935, Hi: 1935}}, TCP: true, UDP: true, Layer: 4, PersistTimeout: 300 * time.Second}
	for i, n := range servers {
		ss.Servers = append(ss.Servers, tables.ServerSpec{Name: n, Addr: netip.AddrFrom4([4]byte{192, 168, 94, byte(115 + i)}),
			Weight: 100, HasMAC: true})
	}
	s, err := tables.Build(tables.Spec{HashSeed: 7, Services: []tables.ServiceSpec{ss}}, prev)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSyncChannel: the master's persistence entries and operator states reach
// the backup, the backup's heartbeats make the master see it, and a node with
// another secret is heard by nobody.
func TestSyncChannel(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs after the nodes' Close
	var ha, hb tables.Holder
	ha.Store(trafficSnapshot(t, nil, "HT1", "HT2"))
	hb.Store(trafficSnapshot(t, nil, "HT1", "HT2"))
	var clients []netip.Addr
	want := map[netip.Addr]string{}
	for i := range 50 {
		c := netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})
		srv, _ := ha.Load().Services()[0].Pick(c, 1000)
		clients, want[c] = append(clients, c), srv.Name
	}
	// A third server on both: some clients' Maglev pick moves; their entries must not.
	ha.Store(trafficSnapshot(t, ha.Load(), "HT1", "HT2", "HT3"))
	hb.Store(trafficSnapshot(t, hb.Load(), "HT1", "HT2", "HT3"))

	adminA := &fakeAdmin{states: map[string]string{"Harmonic_Traffic/HT1": "drain"}}
	adminB := &fakeAdmin{}
	a := testNode(t, "s3cret", RoleMaster, &ha, 1001, adminA)
	b := testNode(t, "s3cret", RoleBackup, &hb, 20, adminB)
	link(t, a, b)

	fresh := trafficSnapshot(t, nil, "HT1", "HT2", "HT3").Services()[0]
	moved := 0
	for _, c := range clients {
		if srv, _ := fresh.Pick(c, 1); srv.Name != want[c] {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("adding HT3 moved no client's Maglev pick; the test shows nothing")
	}
	waitFor(t, "entries on the backup", func() bool { return b.Status().Imported >= uint64(len(clients)) })
	for _, c := range clients {
		srv, v := hb.Load().Services()[0].Pick(c, 21)
		if srv.Name != want[c] || v != tables.VerdictPersist {
			t.Errorf("backup picks %s (%v) for %s, the master gave %s", srv.Name, v, c, want[c])
		}
	}
	waitFor(t, "drain on the backup", func() bool { return adminB.get("Harmonic_Traffic/HT1") == "drain" })
	waitFor(t, "peer states", func() bool { return a.Status().PeerState == RoleBackup && b.Status().PeerState == RoleMaster })
	if a.Status().Imported != 0 {
		t.Errorf("the master imported %d entries from its backup", a.Status().Imported)
	}

	// A change of operator state on the master reaches the backup at once.
	adminA.ApplyAdminStates(map[string]string{})
	a.AdminChanged()
	waitFor(t, "online on the backup", func() bool { return adminB.get("Harmonic_Traffic/HT1") == "" })

	// A third node with another secret: its frames fail authentication.
	var hc tables.Holder
	hc.Store(trafficSnapshot(t, nil, "HT1"))
	c := testNode(t, "wrong", RoleMaster, &hc, 5, &fakeAdmin{})
	// It dials from a's peer address (b's), so that the MAC, not the source, refuses it.
	c.sync = listenSync(t, c, netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.1"))
	c.sync.peer = a.sync.ln.Addr().String()
	c.sync.start(c.ctx, &c.wg)
	defer c.Close()
	time.Sleep(3 * HeartbeatInterval)
	if st := a.Status(); st.PeerState != RoleBackup {
		t.Errorf("a node with another secret changed the peer state to %q", st.PeerState)
	}
}

// TestHealthFile: the track file keepalived follows says 1 (FAULT) while the
// node is unhealthy and 0 again when it recovers.
func TestHealthFile(t *testing.T) {
	var bad atomic.Bool
	n := testNode(t, "s", RoleMaster, nil, 1, nil)
	n.opts.HA.AdvertInterval = 10 * time.Millisecond
	n.opts.Health = func() (bool, string) { return !bad.Load(), "1 of 2 dataplane workers stopped" }
	n.health = filepath.Join(t.TempDir(), "health")
	if err := n.writeHealth(true); err != nil {
		t.Fatal(err)
	}
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.watchHealth() }()
	defer n.Close()
	read := func() string { b, _ := os.ReadFile(n.health); return string(b) }
	if got := read(); got != "0\n" {
		t.Fatalf("healthy: file %q", got)
	}
	bad.Store(true)
	waitFor(t, "fault in the health file", func() bool { return read() == "1\n" })
	n.setRole("FAULT", 0)
	if st := n.Status(); st.Role != RoleFault || !strings.Contains(st.Cause, "dataplane workers stopped") || st.Failovers != 1 {
		t.Errorf("status after FAULT: %+v", st)
	}
	bad.Store(false)
	waitFor(t, "healthy again in the health file", func() bool { return read() == "0\n" })
}

// TestRenderKeepalivedKnown: keepalived itself knows every keyword we write
// (check_unicast_src, min_ttl/max_ttl, unicast_src_ip are 2.x additions).
func TestRenderKeepalivedKnown(t *testing.T) {
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("keepalived not installed (make deps-test installs it)")
	}
	conf := filepath.Join(t.TempDir(), "keepalived.conf")
	s := KeepalivedSettings{Node: "lb1", Interface: "lo", Peer: netip.MustParseAddr("192.168.94.3"), Local: netip.MustParseAddr("192.168.94.2"),
		Priority: 150, RouterID: 51, Advert: 100 * time.Millisecond, FIFO: "/nonexistent/fifo", Health: "/nonexistent/health",
		VIPs: []netip.Addr{netip.MustParseAddr("192.168.94.100")}}
	if err := os.WriteFile(conf, []byte(RenderKeepalived(s)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(bin, "--config-test", "-f", conf).CombinedOutput()
	for _, bad := range []string{"Unknown keyword", "unknown", "invalid", "Invalid"} {
		if strings.Contains(string(out), bad) {
			t.Errorf("keepalived --config-test: %s", out)
		}
	}
}

// TestHealthFileRetried: while the track file cannot be written (state_dir full
// or read-only), an unhealthy node holds keepalived stopped, so the VIPs go to the
// peer; the write is retried every interval and, once it succeeds, keepalived may
// run again with the file telling it the truth.
func TestHealthFileRetried(t *testing.T) {
	var bad atomic.Bool
	n := testNode(t, "s", RoleMaster, nil, 1, nil)
	n.opts.HA.AdvertInterval = 10 * time.Millisecond
	n.opts.Health = func() (bool, string) { return !bad.Load(), "no XDP program" }
	dir := filepath.Join(t.TempDir(), "ha")
	n.health = filepath.Join(dir, "health")
	n.sup = newSupervisor("keepalived", dir, zerolog.Nop())
	if err := n.writeHealth(true); err != nil {
		t.Fatal(err)
	}
	// The directory goes: a plain file in its place makes every write fail, even as root.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.watchHealth() }()
	defer n.Close()
	bad.Store(true)
	waitFor(t, "keepalived held while the health file cannot be written", n.sup.isHeld)
	time.Sleep(50 * time.Millisecond)
	if !n.sup.isHeld() {
		t.Fatal("keepalived released while the node is unhealthy and the file still unwritten")
	}
	os.Remove(dir)
	read := func() string { b, _ := os.ReadFile(n.health); return string(b) }
	waitFor(t, "fault written once the directory is back", func() bool { return read() == "1\n" })
	waitFor(t, "keepalived no longer held", func() bool { return !n.sup.isHeld() })
	bad.Store(false)
	waitFor(t, "healthy in the health file", func() bool { return read() == "0\n" })

	// Unhealthy and unwritable again, then healthy before the file could be
	// written: the file's "0" (on a read-only state_dir it stays; here its
	// directory is gone) is the truth again, so keepalived may run.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bad.Store(true)
	waitFor(t, "keepalived held again", n.sup.isHeld)
	bad.Store(false)
	waitFor(t, "keepalived released: the old file tells the truth", func() bool { return !n.sup.isHeld() })
}
