package xdpref

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/lab"
)

var (
	vip      = netip.MustParseAddr("10.97.0.1")
	client   = netip.MustParseAddr("10.97.0.2")
	serverMA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x42}
	ourMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	vips     = []afxdp.VIP{{Addr: vip, Proto: afxdp.ProtoUDP, Ports: []afxdp.PortRange{{Lo: 5000, Hi: 5000}}}}
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads and attaches XDP programs")
	}
}

// TestCounterNames: the Go names cover exactly the program's counters.
func TestCounterNames(t *testing.T) {
	spec, err := loadRef()
	if err != nil {
		t.Fatal(err)
	}
	if n := spec.Maps["stats"].MaxEntries; int(n) != len(counterNames) {
		t.Errorf("stats map has %d entries, counterNames %d", n, len(counterNames))
	}
}

// udp4 builds an Ethernet/IPv4/UDP frame from client to vip:dport.
func udp4(dport uint16) []byte {
	f := make([]byte, 14+20+8+4)
	copy(f[0:6], ourMAC)
	copy(f[6:12], net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99})
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	copy(ip[12:16], client.AsSlice())
	copy(ip[16:20], vip.AsSlice())
	binary.BigEndian.PutUint16(ip[20:], 40000)
	binary.BigEndian.PutUint16(ip[22:], dport)
	binary.BigEndian.PutUint16(ip[24:], 12)
	return f
}

// TestForwarder runs frames through xdp_tx_fwd (BPF_PROG_TEST_RUN): a VIP's
// frame leaves with XDP_TX and the server's MAC, anything else goes to the
// kernel and is counted by reason.
func TestForwarder(t *testing.T) {
	requireRoot(t)
	a, err := loadForwarder(serverMA, ourMAC, vips)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	arp := udp4(5000)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	for _, tc := range []struct {
		name    string
		frame   []byte
		ret     uint32
		counter string
	}{
		{"vip", udp4(5000), 3, "tx_fwd"},
		{"other port", udp4(5001), 2, "pass_no_vip"},
		{"arp", arp, 2, "pass_not_ip"},
		{"truncated", udp4(5000)[:30], 2, "pass_malformed"},
	} {
		before := a.ProgramStats()
		out := make([]byte, len(tc.frame))
		ret, err := a.prog.Run(&ebpf.RunOptions{Data: tc.frame, DataOut: out})
		if err != nil {
			t.Fatal(err)
		}
		if ret != tc.ret {
			t.Errorf("%s: returned %d, want %d", tc.name, ret, tc.ret)
		}
		after := a.ProgramStats()
		if after[tc.counter] != before[tc.counter]+1 {
			t.Errorf("%s: counter %s %d -> %d, want one more", tc.name, tc.counter, before[tc.counter], after[tc.counter])
		}
		if tc.ret == 3 && (!bytes.Equal(out[0:6], serverMA) || !bytes.Equal(out[6:12], ourMAC) || !bytes.Equal(out[12:], tc.frame[12:])) {
			t.Errorf("%s: forwarded frame % x, want the server's and our MAC and the rest unchanged", tc.name, out)
		}
		if tc.ret == 2 && !bytes.Equal(out, tc.frame) {
			t.Errorf("%s: passed frame changed: % x", tc.name, out)
		}
	}
	if _, err := loadForwarder(serverMA[:5], ourMAC, vips); err == nil {
		t.Error("a 5-byte MAC was taken")
	}
}

// TestAttach: both programs attach to a veth through a BPF link, a second
// program on a held interface is refused, and Close leaves none behind.
func TestAttach(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip command (make deps-lab)")
	}
	ns := lab.Prefix("xr") + "ns"
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	for _, args := range [][]string{
		{"netns", "add", ns},
		{"-n", ns, "link", "add", "xr0", "type", "veth", "peer", "name", "xr1"},
		{"-n", ns, "link", "set", "xr0", "up"},
		{"-n", ns, "link", "set", "xr1", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	progID := func(ifname string) uint32 {
		var id uint32
		if err := lab.Do(ns, func() error {
			l, err := netlink.LinkByName(ifname)
			if err == nil && l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached {
				id = l.Attrs().Xdp.ProgId
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	var fwd, pass *Attachment
	if err := lab.Do(ns, func() (err error) {
		if fwd, err = AttachXDPTXForwarder("xr0", serverMA, ourMAC, vips); err != nil {
			return err
		}
		pass, err = AttachPass("xr1")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	defer pass.Close()
	if fwd.Mode() == "" || pass.Mode() == "" || progID("xr0") == 0 || progID("xr1") == 0 {
		t.Errorf("modes %q %q, program ids %d %d: want both attached", fwd.Mode(), pass.Mode(), progID("xr0"), progID("xr1"))
	}
	if err := lab.Do(ns, func() error {
		again, err := AttachPass("xr0")
		if err == nil {
			again.Close()
		}
		return err
	}); err == nil {
		t.Error("a second program on an interface held by a BPF link was attached")
	}
	if err := fwd.Close(); err != nil {
		t.Error(err)
	}
	if err := pass.Close(); err != nil {
		t.Error(err)
	}
	if a, b := progID("xr0"), progID("xr1"); a != 0 || b != 0 {
		t.Errorf("programs %d and %d left after Close", a, b)
	}
}
