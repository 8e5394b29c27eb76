package netif

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/vishvananda/netlink"
)

func TestGratuitousARPLayout(t *testing.T) {
	mac := [6]byte{2, 0, 0, 0, 0, 1}
	ip := netip.MustParseAddr("192.168.94.110")
	for _, op := range []uint16{1, 2} {
		f := GratuitousARP(mac, ip, op)
		if len(f) != 42 || f[12] != 0x08 || f[13] != 0x06 || f[21] != byte(op) {
			t.Fatalf("op %d: bad frame % x", op, f)
		}
		if !bytes.Equal(f[28:32], f[38:42]) || !bytes.Equal(f[28:32], []byte{192, 168, 94, 110}) {
			t.Fatalf("op %d: sender/target protocol address differ: % x", op, f)
		}
	}
}

func TestUnsolicitedNAChecksum(t *testing.T) {
	mac := [6]byte{2, 0, 0, 0, 0, 1}
	f := UnsolicitedNA(mac, netip.MustParseAddr("fd94::110"))
	src, dst := [16]byte(f[22:38]), [16]byte(f[38:54])
	// A correct checksum makes the sum over pseudo-header and message fold to zero.
	if got := icmpv6Checksum(src, dst, f[54:]); got != 0 {
		t.Fatalf("checksum does not verify: residue %#x", got)
	}
	if f[54] != 136 || f[58]&0x20 == 0 {
		t.Fatalf("not an NA with override flag: % x", f[54:62])
	}
}

// The namespace test re-executes this test binary inside a namespace it creates, so the
// package's netlink calls (which act on the calling thread's namespace) all run there.
const childEnv = "MEDIALB_NETIF_CHILD"

func TestNamespace(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("parent-only test")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	prefix := fmt.Sprintf("mlbni%d", os.Getpid()%100000)
	a, b := prefix+"a", prefix+"b"
	ip := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", a).Run()
		exec.Command("ip", "netns", "del", b).Run()
	})
	ip("netns", "add", a)
	ip("netns", "add", b)
	ip("-n", a, "link", "add", "name", "va", "type", "veth", "peer", "name", "vb", "netns", b)
	ip("-n", a, "addr", "add", "10.9.0.1/24", "dev", "va")
	ip("-n", b, "addr", "add", "10.9.0.2/24", "dev", "vb")
	ip("-n", a, "link", "set", "va", "up")
	ip("-n", b, "link", "set", "vb", "up")
	exec.Command("ip", "netns", "exec", b, "sysctl", "-qw", "net.ipv4.conf.vb.arp_accept=1").Run()
	var peerMAC string
	for _, l := range strings.Fields(ip("-n", b, "link", "show", "vb")) {
		if hw, err := net.ParseMAC(l); err == nil && len(hw) == 6 && l != "ff:ff:ff:ff:ff:ff" {
			peerMAC = hw.String()
			break
		}
	}
	cmd := exec.Command("ip", "netns", "exec", a, os.Args[0], "-test.run=^TestInNamespace$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"=1", "PEER_MAC="+peerMAC)
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestInNamespace") {
		t.Fatalf("child test failed: %v", err)
	}
	// The gratuitous ARP the child sent must have taught b where the VIP is.
	if n := ip("-n", b, "neigh", "show", "10.9.0.100"); !strings.Contains(n, "lladdr") {
		t.Errorf("peer learned nothing from the gratuitous ARP: %q", n)
	}
	// And the child's Close removed the VIP it added.
	if addrs := ip("-n", a, "addr", "show", "va"); strings.Contains(addrs, "10.9.0.100") {
		t.Errorf("VIP left on the interface after Close:\n%s", addrs)
	}
}

func TestInNamespace(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("runs inside the namespace TestNamespace creates")
	}
	vip := netip.MustParseAddr("10.9.0.100")
	v, err := OpenVIPs("va", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	up, err := v.Set([]netip.Addr{vip})
	if err != nil || len(up) != 1 {
		t.Fatalf("Set: up=%v err=%v", up, err)
	}
	if up, err := v.Set([]netip.Addr{vip}); err != nil || len(up) != 0 {
		t.Fatalf("second Set is not idempotent: up=%v err=%v", up, err)
	}
	addrs, _ := netlink.AddrList(v.Link(), netlink.FAMILY_V4)
	found := false
	for _, a := range addrs {
		if a.IP.Equal(vip.AsSlice()) {
			ones, _ := a.Mask.Size()
			found = ones == 32
		}
	}
	if !found {
		t.Fatalf("VIP not on interface as /32: %v", addrs)
	}
	if err := Announce("va", vip); err != nil {
		t.Fatal(err)
	}

	changed := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := WatchNeighbors(ctx, "va", zerolog.Nop(), func() { changed <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddr("10.9.0.2")
	n.Want([]netip.Addr{peer})
	deadline := time.After(5 * time.Second)
	for {
		if m, ok := n.MAC(peer); ok {
			if got := net.HardwareAddr(m[:]).String(); got != os.Getenv("PEER_MAC") {
				t.Fatalf("resolved MAC %s, want %s", got, os.Getenv("PEER_MAC"))
			}
			break
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatal("peer MAC not resolved within 5s")
		}
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
}
