package ha

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/tables"
)

// fakeKeepalived writes a keepalived stand-in whose --config-test refuses any
// file containing "priority 99".
func fakeKeepalived(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "keepalived")
	script := "#!/bin/sh\n[ \"$1\" = --config-test ] || exit 1\nif grep -q 'priority 99' \"$3\"; then echo 'bad priority' >&2; exit 1; fi\nexit 0\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestPrepareReloadRefused: a configuration keepalived's test refuses leaves the
// previous file and settings in force, so the same reload tried again is tested
// again (and refused again), not skipped as already applied.
func TestPrepareReloadRefused(t *testing.T) {
	n := testNode(t, "s", RoleBackup, nil, 1, nil)
	dir := t.TempDir()
	n.sup = newSupervisor(fakeKeepalived(t), dir, n.log)
	h := config.HA{Peer: netip.MustParseAddr("192.0.2.3"), Priority: 150, RouterID: 51, AdvertInterval: 100 * time.Millisecond,
		Secret: "0123456789abcdef", SyncPort: 7778}
	n.cur = h
	n.settings = KeepalivedSettings{Node: "lb1", Interface: "eth0", Peer: h.Peer, Priority: 150, RouterID: 51,
		Advert: h.AdvertInterval, VIPs: []netip.Addr{netip.MustParseAddr("192.0.2.100")}, FIFO: "f", Health: "h"}
	before := RenderKeepalived(n.settings)
	if err := n.sup.writeConfig(before); err != nil {
		t.Fatal(err)
	}
	bad := h
	bad.Priority = 99
	for try := range 2 {
		if _, err := n.PrepareReload("lb1", bad, n.settings.VIPs); err == nil || !strings.Contains(err.Error(), "bad priority") {
			t.Fatalf("try %d: %v, want keepalived's refusal", try, err)
		}
		if got, _ := os.ReadFile(n.sup.conf); string(got) != before {
			t.Fatalf("try %d: keepalived.conf changed by a refused reload:\n%s", try, got)
		}
		if n.settings.Priority != 150 || n.cur.Priority != 150 {
			t.Fatalf("try %d: settings changed by a refused reload: %+v", try, n.settings)
		}
	}
	if _, err := os.Stat(n.sup.conf + ".new"); !os.IsNotExist(err) {
		t.Errorf("candidate file left behind: %v", err)
	}
	good := h
	good.Priority = 120
	r, err := n.PrepareReload("lb1", good, n.settings.VIPs)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(n.sup.conf); string(got) != before {
		t.Fatal("keepalived.conf changed before Commit")
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(n.sup.conf); !strings.Contains(string(got), "priority 120") {
		t.Errorf("after Commit keepalived.conf has no priority 120:\n%s", got)
	}
	if n.settings.Priority != 120 {
		t.Errorf("settings after Commit: %+v", n.settings)
	}
}

// TestReloadSync: a reload with a new ha.secret, ha.peer and ha.sync_port binds the
// new port before anything changes, and the commit restarts the sync channel on
// it with the new key and peer; the old port is closed.
func TestReloadSync(t *testing.T) {
	var ha, hb tables.Holder
	ha.Store(trafficSnapshot(t, nil, "HT1"))
	hb.Store(trafficSnapshot(t, nil, "HT1"))
	a := testNode(t, "old-secret-0123456789", RoleMaster, &ha, 5, &fakeAdmin{})
	b := testNode(t, "old-secret-0123456789", RoleBackup, &hb, 5, &fakeAdmin{})
	link(t, a, b)
	oldAddr := a.sync.ln.Addr().String()
	a.sup = newSupervisor(fakeKeepalived(t), t.TempDir(), a.log)
	a.cur = config.HA{Peer: netip.MustParseAddr("127.0.0.1"), Priority: 150, RouterID: 51, Secret: "old-secret-0123456789", SyncPort: 1}
	a.settings = KeepalivedSettings{Node: "lb1", Interface: "lo", Peer: a.cur.Peer, Priority: 150, RouterID: 51, Advert: time.Second}
	port := freePort(t)
	h := a.cur
	h.Secret, h.Peer, h.SyncPort = "new-secret-0123456789", netip.MustParseAddr("127.0.0.2"), port
	r, err := a.PrepareReload("lb1", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.syncer().key) != "old-secret-0123456789" {
		t.Fatal("the sync key changed before Commit")
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	s := a.syncer()
	if string(s.key) != "new-secret-0123456789" || s.peer != netip.AddrPortFrom(h.Peer, port).String() {
		t.Errorf("sync channel after Commit: key %q peer %s", s.key, s.peer)
	}
	if c, err := net.DialTimeout("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String(), time.Second); err != nil {
		t.Errorf("nothing listens on the new ha.sync_port %d: %v", port, err)
	} else {
		c.Close()
	}
	if c, err := net.DialTimeout("tcp", oldAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("the old sync listener %s still accepts", oldAddr)
	}
}

// freePort returns a port nothing listens on, below the ephemeral range (so that
// no outgoing connection takes it before the test binds it).
func freePort(t *testing.T) uint16 {
	t.Helper()
	for p := 20000 + rand.IntN(5000); p < 32768; p++ {
		if ln, err := net.Listen("tcp", ":"+strconv.Itoa(p)); err == nil {
			ln.Close()
			return uint16(p)
		}
	}
	t.Fatal("no free port")
	return 0
}
