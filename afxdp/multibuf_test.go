package afxdp

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/rs/zerolog"
)

// bpfFXDPHasFrags is BPF_F_XDP_HAS_FRAGS (include/uapi/linux/bpf.h).
const bpfFXDPHasFrags = 1 << 5

// counter sums a stats counter of objs by name.
func counter(t *testing.T, m *ebpf.Map, name string) uint64 {
	t.Helper()
	v, ok := ReadCounters(m, statNames)[name]
	if !ok {
		t.Fatalf("no counter %s", name)
	}
	return v
}

// TestMultiBufferProgram: the steering program is an xdp.frags program; a
// VIP's frame larger than one buffer is dropped and counted (never given to
// the socket, never sent back), a kernel-bound one passes whole. A
// single-buffer program cannot even be run on such frames (BPF_PROG_TEST_RUN
// answers EINVAL), so this fails with SEC("xdp").
func TestMultiBufferProgram(t *testing.T) {
	requireRoot(t)
	spec, err := loadSteer()
	if err != nil {
		t.Fatal(err)
	}
	if f := spec.Programs["xdp_steer"].Flags; f&bpfFXDPHasFrags == 0 {
		t.Fatalf("xdp_steer loads with flags %#x: no BPF_F_XDP_HAS_FRAGS (SEC(\"xdp.frags\"))", f)
	}
	var objs steerObjects
	if err := loadSteerObjects(&objs, nil); err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	keys, err := Keys([]VIP{{Addr: ipA4, Proto: ProtoUDP, Ports: []PortRange{{5000, 5000}}}})
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys {
		if err := objs.Vips.Put(k, uint8(0)); err != nil {
			t.Fatal(err)
		}
	}
	mac := []byte{2, 0, 0, 0, 0, 1}
	for _, tt := range []struct {
		name    string
		size    int // UDP payload
		dport   uint16
		ret     uint32
		counter string
	}{
		{"VIP, one buffer", 1000, 5000, 2, "pass_no_socket"}, // no socket in the XSKMAP: XDP_PASS
		{"VIP, several buffers", 6000, 5000, 1, "drop_multibuf"},
		{"VIP, 64 KiB aggregate", 60000, 5000, 1, "drop_multibuf"},
		{"kernel's, several buffers", 6000, 6000, 2, "pass_no_vip"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			frame := udp4(mac, mac, ipB4, ipA4, 1, tt.dport, make([]byte, tt.size))
			before := counter(t, objs.Stats, tt.counter)
			drops := counter(t, objs.Stats, "drop_multibuf")
			ret, err := objs.XdpSteer.Run(&ebpf.RunOptions{Data: frame})
			if err != nil {
				t.Fatalf("run on %d bytes: %v", len(frame), err)
			}
			if ret != tt.ret {
				t.Errorf("returned %d, want %d", ret, tt.ret)
			}
			if got := counter(t, objs.Stats, tt.counter); got != before+1 {
				t.Errorf("counter %s: %d -> %d, want +1", tt.counter, before, got)
			}
			if tt.counter != "drop_multibuf" && counter(t, objs.Stats, "drop_multibuf") != drops {
				t.Errorf("drop_multibuf moved for a frame that is not a VIP's multi-buffer frame")
			}
		})
	}
}

// ethtoolFeature returns the line of `ethtool -k ifname` for feature in
// namespace ns, e.g. "on", "off [fixed]".
func ethtoolFeature(t *testing.T, ns, ifname, feature string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "ethtool", "-k", ifname).CombinedOutput()
	if err != nil {
		t.Fatalf("ethtool -k %s: %v\n%s", ifname, err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), feature+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("ethtool -k %s: no %s line\n%s", ifname, feature, out)
	return ""
}

// TestFragsOnVeth: with the steering program attached to a veth, the peer may
// carry frames larger than a page (a single-buffer program caps the peer's MTU
// at ~3.5 KB: checked first, so that the test can tell), a kernel-bound frame of
// several buffers reaches the kernel and a VIP's one is dropped and counted on
// the wire too. What the peer's TSO shows is logged: veth turns it off for any
// XDP program, xdp.frags or not (Linux 6.18; see BENCHMARKS.md).
func TestFragsOnVeth(t *testing.T) {
	p := newPair(t)
	prog := passProgram(t) // a plain SEC("xdp") program
	defer prog.Close()
	var lk link.Link
	if err := inNS(p.hA, func() (err error) { lk, _, err = AttachProgram(prog, "xa", ModeNative, zerolog.Nop()); return err }); err != nil {
		t.Fatal(err)
	}
	t.Logf("peer tx-tcp-segmentation with a single-buffer program: %s", ethtoolFeature(t, p.nsB, "xb", "tx-tcp-segmentation"))
	if out, err := exec.Command("ip", "-n", p.nsB, "link", "set", "xb", "mtu", "9000").CombinedOutput(); err == nil {
		t.Fatalf("peer MTU 9000 accepted with a single-buffer program attached: the test cannot tell")
	} else {
		t.Logf("peer MTU 9000 with a single-buffer program: %v %s", err, strings.TrimSpace(string(out)))
	}
	lk.Close()

	d := p.open(t, Config{})
	if err := d.SetVIPs([]VIP{{Addr: ipA4, Proto: ProtoUDP, Ports: []PortRange{{5000, 5000}}}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("peer tx-tcp-segmentation with the steering program: %s", ethtoolFeature(t, p.nsB, "xb", "tx-tcp-segmentation"))
	// A 6000-byte datagram: one multi-buffer frame.
	run(t, "ip", "-n", p.nsB, "link", "set", "xb", "mtu", "9000")
	run(t, "ip", "-n", p.nsA, "link", "set", "xa", "mtu", "9000")
	kernel := listenUDP(t, p.hA, netip.AddrPortFrom(ipA4, 6000))
	raw := rawSender(t, p.hB, p.idxB)
	before := d.ProgramStats()
	raw(udp4(p.macA, p.macB, ipB4, ipA4, 1, 5000, make([]byte, 6000)))
	raw(udp4(p.macA, p.macB, ipB4, ipA4, 1, 6000, make([]byte, 6000)))
	if n := countUDP(kernel, 1, 2*time.Second); n != 1 {
		t.Errorf("the 6000-byte datagram to a non-VIP port did not reach the kernel")
	}
	after := d.ProgramStats()
	if got := after["drop_multibuf"] - before["drop_multibuf"]; got != 1 {
		t.Errorf("drop_multibuf +%d, want +1 (the VIP's 6000-byte frame)", got)
	}
	if got := after["redirect"] - before["redirect"]; got != 0 {
		t.Errorf("redirect +%d: a multi-buffer frame went to the socket", got)
	}
}
