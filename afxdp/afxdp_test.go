package afxdp

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Steering: VIP frames reach the socket, everything else the kernel.
func TestSteering(t *testing.T) {
	p := newPair(t)
	var logs syncBuffer
	d := p.open(t, Config{Logger: testLogger(t, &logs)})
	if mode, zc := d.Mode(); mode != ModeNative || zc {
		t.Errorf("Mode() = %s, zero-copy %v; want native XDP, copy mode on veth", mode, zc)
	}
	if !strings.Contains(logs.String(), "copy mode") {
		t.Errorf("log does not say why copy mode runs:\n%s", logs.String())
	}
	if err := d.SetVIPs([]VIP{
		{Addr: ipA4, Proto: ProtoUDP, Ports: []PortRange{{5000, 5000}}},
		{Addr: ipA4, Proto: ProtoTCP, Ports: []PortRange{{5001, 5001}}},
		{Addr: ipA6, Proto: ProtoUDP, Ports: []PortRange{{5000, 5000}}},
		{Addr: vlA4, Proto: ProtoUDP, Ports: []PortRange{{5000, 5000}}},
	}); err != nil {
		t.Fatal(err)
	}
	s := d.Sockets()[0]
	// The kernel's side, in the LB namespace: a UDP service on a non-VIP port.
	kernelUDP := listenUDP(t, p.hA, netip.AddrPortFrom(ipA4, 6000))
	var tcpLn net.Listener
	if err := inNS(p.hA, func() (err error) { tcpLn, err = net.Listen("tcp", "10.99.0.1:7001"); return err }); err != nil {
		t.Fatal(err)
	}
	defer tcpLn.Close()
	go func() {
		for {
			c, err := tcpLn.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	raw := rawSender(t, p.hB, p.idxB)

	t.Run("kernel: ICMP and ARP", func(t *testing.T) {
		if !pingable(t, p.hB, ipA4) {
			t.Fatal("ping to the LB address failed: ICMP/ARP did not reach the kernel")
		}
	})
	t.Run("kernel: UDP other port", func(t *testing.T) {
		c := dialUDP(t, p.hB, netip.AddrPortFrom(ipA4, 6000))
		c.Write([]byte("to the kernel"))
		if n := countUDP(kernelUDP, 1, 2*time.Second); n != 1 {
			t.Fatal("datagram to a non-VIP port did not reach the kernel's socket")
		}
	})
	t.Run("kernel: TCP other port", func(t *testing.T) {
		err := inNS(p.hB, func() error {
			c, err := net.DialTimeout("tcp", "10.99.0.1:7001", 2*time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err != nil {
			t.Fatalf("TCP connect to a non-VIP port: %v", err)
		}
	})

	cases := []struct {
		name  string
		send  func()
		want  int
		check func(t *testing.T, fs []frame)
	}{
		{"UDPv4", func() {
			c := dialUDP(t, p.hB, netip.AddrPortFrom(ipA4, 5000))
			c.Write([]byte("hello VIP"))
		}, 1, func(t *testing.T, fs []frame) {
			if dst, proto, port, _ := fs[0].v4(); dst != ipA4 || proto != ProtoUDP || port != 5000 {
				t.Errorf("got %v proto %d port %d", dst, proto, port)
			}
		}},
		{"TCPv4 SYN", func() {
			go inNS(p.hB, func() error {
				c, err := net.DialTimeout("tcp", "10.99.0.1:5001", 300*time.Millisecond)
				if err == nil {
					c.Close()
				}
				return nil
			})
		}, 1, func(t *testing.T, fs []frame) {
			dst, proto, port, _ := fs[0].v4()
			_, o := fs[0].l3()
			if dst != ipA4 || proto != ProtoTCP || port != 5001 || fs[0][o+20+13]&0x02 == 0 {
				t.Errorf("got %v proto %d port %d flags %#x, want a SYN to 5001", dst, proto, port, fs[0][o+20+13])
			}
		}},
		{"UDPv6", func() {
			c := dialUDP(t, p.hB, netip.AddrPortFrom(ipA6, 5000))
			c.Write([]byte("hello VIP6"))
		}, 1, func(t *testing.T, fs []frame) {
			if et, _ := fs[0].l3(); et != 0x86dd {
				t.Errorf("ethertype %#x", et)
			}
		}},
		{"UDPv6 with hop-by-hop and destination options", func() {
			raw(udp6(p.macA, p.macB, ipB6, ipA6, 40000, 5000, []byte("ext"), 0, 60))
		}, 1, func(t *testing.T, fs []frame) {
			if _, o := fs[0].l3(); fs[0][o+6] != 0 {
				t.Errorf("next header %d, want hop-by-hop", fs[0][o+6])
			}
		}},
		{"VLAN 10 UDPv4", func() {
			// This kernel has no 8021q module, so the tagged frame is made by hand.
			raw(tagged(udp4(p.macA, p.macB, vlB4, vlA4, 40000, 5000, []byte("tagged")), 10))
		}, 1, func(t *testing.T, fs []frame) {
			if !fs[0].vlan() {
				t.Error("frame has no VLAN tag")
			}
			if dst, _, port, _ := fs[0].v4(); dst != vlA4 || port != 5000 {
				t.Errorf("got %v port %d", dst, port)
			}
		}},
		{"UDPv4 fragments", func() {
			c := dialUDP(t, p.hB, netip.AddrPortFrom(ipA4, 5000))
			c.Write(make([]byte, 4000)) // MTU 1500: three fragments
		}, 3, func(t *testing.T, fs []frame) {
			nonFirst := 0
			for _, f := range fs {
				if _, _, _, frag := f.v4(); frag {
					nonFirst++
				}
			}
			if nonFirst != 2 {
				t.Errorf("%d non-first fragments, want 2", nonFirst)
			}
		}},
		{"UDPv6 fragments", func() {
			c := dialUDP(t, p.hB, netip.AddrPortFrom(ipA6, 5000))
			c.Write(make([]byte, 4000))
		}, 3, func(t *testing.T, fs []frame) {
			for _, f := range fs {
				if _, o := f.l3(); f[o+6] != 44 {
					t.Errorf("next header %d, want a fragment header", f[o+6])
				}
			}
		}},
	}
	for _, tc := range cases {
		t.Run("socket: "+tc.name, func(t *testing.T) {
			before := d.ProgramStats()["redirect"]
			tc.send()
			fs := collect(s, tc.want, 2*time.Second)
			if len(fs) != tc.want {
				t.Fatalf("socket received %d frames, want %d", len(fs), tc.want)
			}
			tc.check(t, fs)
			if got := d.ProgramStats()["redirect"] - before; got < uint64(tc.want) {
				t.Errorf("program counted %d redirects, want %d", got, tc.want)
			}
			// Nothing else for the socket (e.g. retransmissions aside).
			if extra := collect(s, 1, 50*time.Millisecond); len(extra) > 0 && tc.name != "TCPv4 SYN" {
				t.Errorf("%d unexpected extra frames", len(extra))
			}
		})
	}
	t.Run("kernel: IPv6 ext headers to a non-VIP port", func(t *testing.T) {
		before := d.ProgramStats()["pass_no_vip"]
		raw(udp6(p.macA, p.macB, ipB6, ipA6, 40000, 5999, []byte("ext"), 60))
		if fs := collect(s, 1, 200*time.Millisecond); len(fs) != 0 {
			t.Fatal("a frame for a non-VIP port reached the socket")
		}
		if d.ProgramStats()["pass_no_vip"] == before {
			t.Error("pass_no_vip did not count it")
		}
	})
	t.Run("kernel: VLAN other port, three tags", func(t *testing.T) {
		before := d.ProgramStats()
		raw(tagged(udp4(p.macA, p.macB, vlB4, vlA4, 40000, 5999, []byte("tagged")), 10))
		// Two tags (QinQ) are parsed, as the pipeline does; a third is the kernel's.
		raw(tagged(tagged(tagged(udp4(p.macA, p.macB, vlB4, vlA4, 40000, 5000, []byte("q3")), 10), 20), 30))
		if fs := collect(s, 1, 200*time.Millisecond); len(fs) != 0 {
			t.Fatal("a tagged non-VIP or triple-tagged frame reached the socket")
		}
		after := d.ProgramStats()
		if after["pass_no_vip"] == before["pass_no_vip"] || after["pass_vlan_stacked"] == before["pass_vlan_stacked"] {
			t.Errorf("counters before %v after %v", before, after)
		}
	})
	t.Run("missing socket means kernel", func(t *testing.T) {
		if err := d.objs.Xsks.Delete(uint32(0)); err != nil {
			t.Fatal(err)
		}
		defer d.objs.Xsks.Put(uint32(0), uint32(s.FD()))
		ln := listenUDP(t, p.hA, netip.AddrPortFrom(ipA4, 5000))
		c := dialUDP(t, p.hB, netip.AddrPortFrom(ipA4, 5000))
		c.Write([]byte("no socket"))
		if countUDP(ln, 1, 2*time.Second) != 1 {
			t.Fatal("VIP frame without a socket on its queue was not passed to the kernel")
		}
		if d.ProgramStats()["pass_no_socket"] == 0 {
			t.Error("pass_no_socket not counted")
		}
	})
	st := d.ProgramStats()
	t.Logf("program stats: %v", st)
	if st["pass"] != st["pass_no_socket"]+st["pass_not_ip"]+st["pass_no_vip"]+st["pass_no_ports"]+
		st["pass_malformed"]+st["pass_vlan_stacked"]+st["pass_ext_hdrs"] {
		t.Errorf("pass total %d is not the sum of the reasons", st["pass"])
	}
	for _, k := range []string{"redirect_frag", "pass_not_ip", "pass_no_ports", "pass_no_vip"} {
		if st[k] == 0 {
			t.Errorf("counter %s is 0", k)
		}
	}
	t.Logf("socket stats: %+v", s.Stats())
}

// Transmit: a received frame goes back out rewritten, and a batch larger
// than the kernel's 32-frames-per-sendto copy-mode budget arrives whole.
func TestTransmit(t *testing.T) {
	p := newPair(t)
	d := p.open(t, Config{})
	if err := d.SetVIPs([]VIP{{Addr: ipA4, Proto: ProtoUDP, Ports: []PortRange{{5000, 5000}}}}); err != nil {
		t.Fatal(err)
	}
	s := d.Sockets()[0]
	peer := listenUDP(t, p.hB, netip.AddrPortFrom(ipB4, 7000))
	peer.SetReadBuffer(4 << 20)

	t.Run("received frame rewritten and sent back", func(t *testing.T) {
		c := dialUDP(t, p.hB, netip.AddrPortFrom(ipA4, 5000))
		c.Write([]byte("echo me"))
		descs := make([]Desc, 8)
		deadline := time.Now().Add(2 * time.Second)
		n := 0
		for n == 0 && time.Now().Before(deadline) {
			s.Wait(50 * time.Millisecond)
			n = s.Receive(descs)
		}
		if n != 1 {
			t.Fatalf("received %d frames", n)
		}
		// Rewrite in place: MACs swapped, destination the peer's address and
		// port 7000, UDP checksum off, IP checksum recomputed.
		f := s.Frame(descs[0])
		copy(f[0:6], p.macB)
		copy(f[6:12], p.macA)
		ip := f[14:]
		copy(ip[12:16], ipA4.AsSlice())
		copy(ip[16:20], ipB4.AsSlice())
		ip[10], ip[11] = 0, 0
		sum := fold(csum(0, ip[:20]))
		ip[10], ip[11] = byte(sum>>8), byte(sum)
		ip[20+2], ip[20+3] = 7000>>8, 7000&0xff
		ip[20+6], ip[20+7] = 0, 0
		if got := s.Transmit(descs[:1]); got != 1 {
			t.Fatalf("Transmit accepted %d", got)
		}
		buf := make([]byte, 100)
		peer.SetReadDeadline(time.Now().Add(2 * time.Second))
		m, from, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:m]) != "echo me" || from.Addr() != ipA4 {
			t.Fatalf("peer got %q from %v, %v", buf[:m], from, err)
		}
	})

	for _, batch := range []int{1, 33, 200, 500} {
		t.Run("batch "+strconv.Itoa(batch), func(t *testing.T) {
			before := s.Stats()
			descs := make([]Desc, batch)
			if n := s.Alloc(descs); n != batch {
				t.Fatalf("Alloc got %d frames", n)
			}
			for i := range descs {
				b := udp4(p.macB, p.macA, ipA4, ipB4, 5000, 7000, []byte("batch frame"))
				descs[i].Len = uint32(copy(s.Frame(descs[i]), b))
			}
			if n := s.Transmit(descs); n != batch {
				t.Fatalf("Transmit accepted %d of %d", n, batch)
			}
			if got := countUDP(peer, batch, 3*time.Second); got != batch {
				t.Errorf("peer received %d of %d frames sent in one Transmit", got, batch)
			}
			// Completions return the frames to the pool.
			s.Wait(10 * time.Millisecond)
			after := s.Stats()
			if c := after.TxCompleted - before.TxCompleted; c != uint64(batch) {
				t.Errorf("%d completions, want %d", c, batch)
			}
			t.Logf("batch %d: %d sendto kicks, %d EAGAIN", batch, after.TxKicks-before.TxKicks, after.TxEAGAIN-before.TxEAGAIN)
		})
	}
	st := s.Stats()
	if st.FreeFrames+512 != 1024 { // ring size 512 frames on the fill ring
		t.Errorf("free frames %d after all completions, want %d", st.FreeFrames, 1024-512)
	}
}

// TestSetVIPsDiff: reloads change the map in place, and traffic follows.
func TestSetVIPsDiff(t *testing.T) {
	p := newPair(t)
	d := p.open(t, Config{})
	s := d.Sockets()[0]
	if err := d.SetVIPs([]VIP{
		{Addr: ipA4, Proto: ProtoUDP, Ports: []PortRange{{5000, 5009}}},
		{Addr: ipA4, Proto: ProtoTCP, Ports: []PortRange{{5001, 5001}}},
	}); err != nil {
		t.Fatal(err)
	}
	if n := len(readKeys(d.objs.Vips)); n != 10+1+2 {
		t.Fatalf("%d keys in the map, want 13", n)
	}
	c5000 := dialUDP(t, p.hB, netip.AddrPortFrom(ipA4, 5000))
	c5014 := dialUDP(t, p.hB, netip.AddrPortFrom(ipA4, 5014))
	c5000.Write([]byte("x"))
	if len(collect(s, 1, time.Second)) != 1 {
		t.Fatal("port 5000 not steered")
	}
	if err := d.SetVIPs([]VIP{{Addr: ipA4, Proto: ProtoUDP, Ports: []PortRange{{5005, 5014}}}}); err != nil {
		t.Fatal(err)
	}
	keys := readKeys(d.objs.Vips)
	if len(keys) != 11 {
		t.Errorf("%d keys after the diff, want 11", len(keys))
	}
	for port, want := range map[uint16]bool{5000: false, 5004: false, 5005: true, 5014: true, 0: false} {
		if _, ok := keys[keyOf(ipA4, ProtoUDP, port)]; ok != want {
			t.Errorf("UDP port %d in map: %v, want %v", port, ok, want)
		}
	}
	if _, ok := keys[fragKeyOf(ipA4, ProtoUDP)]; !ok {
		t.Error("UDP fragment key missing")
	}
	if _, ok := keys[fragKeyOf(ipA4, ProtoTCP)]; ok {
		t.Error("TCP fragment key left behind")
	}
	ln := listenUDP(t, p.hA, netip.AddrPortFrom(ipA4, 5000))
	c5000.Write([]byte("x"))
	if countUDP(ln, 1, 2*time.Second) != 1 {
		t.Error("port 5000 still steered after it was removed")
	}
	c5014.Write([]byte("y"))
	if len(collect(s, 1, time.Second)) != 1 {
		t.Error("port 5014 not steered after it was added")
	}
	// The media range, both protocols: 2 x 15536 ports + 2 fragment keys.
	media := []PortRange{{1935, 1935}, {554, 554}, {50000, 65535}}
	start := time.Now()
	if err := d.SetVIPs([]VIP{{Addr: ipA4, Proto: ProtoUDP, Ports: media}, {Addr: ipA4, Proto: ProtoTCP, Ports: media}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("media VIP (%d keys) applied in %v", len(d.keys), time.Since(start))
	if n := len(readKeys(d.objs.Vips)); n != 2*(15536+2)+2 {
		t.Errorf("%d keys, want %d", n, 2*(15536+2)+2)
	}
	if err := d.SetVIPs(nil); err != nil {
		t.Fatal(err)
	}
	if n := len(readKeys(d.objs.Vips)); n != 0 {
		t.Errorf("%d keys left after SetVIPs(nil)", n)
	}
}

// TestAttachLifecycle: a netlink-attached program is replaced, a second Open
// on a held interface fails, Close leaves no program, zero-copy "on" fails on
// veth and generic mode works.
func TestAttachLifecycle(t *testing.T) {
	p := newPair(t)
	if id := xdpProgID(t, p.hA, "xa"); id != 0 {
		t.Fatalf("fresh veth has XDP program %d", id)
	}
	// Someone attached a program through netlink (as ip link set ... xdp does).
	prog := passProgram(t)
	if err := inNS(p.hA, func() error {
		l, err := netlink.LinkByName("xa")
		if err != nil {
			return err
		}
		return netlink.LinkSetXdpFdWithFlags(l, prog.FD(), unix.XDP_FLAGS_SKB_MODE)
	}); err != nil {
		t.Fatal(err)
	}
	prog.Close()
	foreign := xdpProgID(t, p.hA, "xa")
	if foreign == 0 {
		t.Fatal("netlink attach left no program")
	}

	var logs syncBuffer
	d := p.open(t, Config{Logger: testLogger(t, &logs)})
	id := xdpProgID(t, p.hA, "xa")
	info, _ := d.objs.XdpSteer.Info()
	ours, _ := info.ID()
	if id == foreign || id != uint32(ours) {
		t.Errorf("program on xa is %d; foreign was %d, ours is %d", id, foreign, ours)
	}
	if !strings.Contains(logs.String(), "removed an XDP program attached through netlink") {
		t.Errorf("replacement not reported:\n%s", logs.String())
	}

	// A second dataplane cannot take an interface a live link holds.
	if err := inNS(p.hA, func() error {
		d2, err := Open(Config{Interface: "xa", NumFrames: 64, RingSize: 64})
		if err == nil {
			d2.Close()
		}
		return err
	}); err == nil {
		t.Error("second Open on a held interface succeeded")
	} else {
		t.Logf("second Open: %v", err)
	}

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if id := xdpProgID(t, p.hA, "xa"); id != 0 {
		t.Errorf("XDP program %d left after Close", id)
	}

	t.Run("replaces ip link set xdpdrv", func(t *testing.T) {
		run(t, "ip", "-n", p.nsA, "link", "set", "dev", "xa", "xdpdrv", "obj", "steer_bpfel.o", "sec", "xdp.frags")
		foreign := xdpProgID(t, p.hA, "xa")
		if foreign == 0 {
			t.Fatal("ip attached no program")
		}
		d := p.open(t, Config{})
		if id := xdpProgID(t, p.hA, "xa"); id == foreign || id == 0 {
			t.Errorf("program %d on xa, foreign was %d", id, foreign)
		}
		d.Close()
		if id := xdpProgID(t, p.hA, "xa"); id != 0 {
			t.Errorf("XDP program %d left after Close", id)
		}
	})
	t.Run("zero-copy on", func(t *testing.T) {
		err := inNS(p.hA, func() error {
			d, err := Open(Config{Interface: "xa", ZeroCopy: ZeroCopyOn, NumFrames: 64, RingSize: 64})
			if err == nil {
				d.Close()
			}
			return err
		})
		if !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("zero-copy on a veth: %v, want EOPNOTSUPP", err)
		}
		if id := xdpProgID(t, p.hA, "xa"); id != 0 {
			t.Errorf("failed Open left XDP program %d", id)
		}
	})
	t.Run("busy poll", func(t *testing.T) {
		d := p.open(t, Config{BusyPoll: true})
		d.SetVIPs([]VIP{{Addr: ipA4, Proto: ProtoUDP, Ports: []PortRange{{5000, 5000}}}})
		dialUDP(t, p.hB, netip.AddrPortFrom(ipA4, 5000)).Write([]byte("busy"))
		s := d.Sockets()[0]
		if len(collect(s, 1, 2*time.Second)) != 1 {
			t.Error("busy poll: frame not received")
		}
		if !s.busyPoll {
			t.Error("busy poll options were refused")
		}
		d.Close()
	})
	t.Run("generic", func(t *testing.T) {
		d := p.open(t, Config{XDPMode: ModeGeneric})
		if m, zc := d.Mode(); m != ModeGeneric || zc {
			t.Errorf("Mode() = %s %v", m, zc)
		}
		d.SetVIPs([]VIP{{Addr: ipA4, Proto: ProtoUDP, Ports: []PortRange{{5000, 5000}}}})
		dialUDP(t, p.hB, netip.AddrPortFrom(ipA4, 5000)).Write([]byte("generic"))
		if len(collect(d.Sockets()[0], 1, 2*time.Second)) != 1 {
			t.Error("generic mode: frame not received")
		}
		d.Close()
		if id := xdpProgID(t, p.hA, "xa"); id != 0 {
			t.Errorf("XDP program %d left after Close", id)
		}
	})
}

// TestReopenAfterKill: a process that opened the dataplane is killed with
// SIGKILL; the kernel removes its program, and the next Open works.
func TestReopenAfterKill(t *testing.T) {
	p := newPair(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "MLBAF_HELPER_NS="+p.nsA)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "HELPER READY") {
				ready <- true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("helper exited before opening")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("helper did not open in time")
	}
	if xdpProgID(t, p.hA, "xa") == 0 {
		t.Fatal("helper's program not attached")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if id := xdpProgID(t, p.hA, "xa"); id != 0 {
		t.Errorf("program %d still attached after the process was killed", id)
	}
	start := time.Now()
	d := p.open(t, Config{})
	t.Logf("re-opened %v after the kill", time.Since(start))
	d.SetVIPs([]VIP{{Addr: ipA4, Proto: ProtoUDP, Ports: []PortRange{{5000, 5000}}}})
	dialUDP(t, p.hB, netip.AddrPortFrom(ipA4, 5000)).Write([]byte("after kill"))
	if len(collect(d.Sockets()[0], 1, 2*time.Second)) != 1 {
		t.Error("re-opened dataplane receives nothing")
	}
}

// TestHelperProcess is the process TestReopenAfterKill kills; it does nothing
// unless started by it.
func TestHelperProcess(t *testing.T) {
	ns := os.Getenv("MLBAF_HELPER_NS")
	if ns == "" {
		t.Skip("helper process for TestReopenAfterKill")
	}
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	var d *Dataplane
	if err := inNS(h, func() (err error) { d, err = Open(Config{Interface: "xa", NumFrames: 1024, RingSize: 512}); return err }); err != nil {
		t.Fatal(err)
	}
	if err := d.SetVIPs([]VIP{{Addr: ipA4, Proto: ProtoUDP, Ports: []PortRange{{5000, 5000}}}}); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("HELPER READY\n")
	time.Sleep(time.Minute)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
