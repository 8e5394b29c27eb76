package afxdp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/rs/zerolog"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The lab of these tests: two namespaces joined by a veth pair, xa (the load
// balancer's side) and xb (the peer). Namespace names start with "mlbaf" and
// the test binary's pid; they are deleted even when a test fails.
var (
	ipA4 = netip.MustParseAddr("10.99.0.1")
	ipB4 = netip.MustParseAddr("10.99.0.2")
	ipA6 = netip.MustParseAddr("fd00:99::1")
	ipB6 = netip.MustParseAddr("fd00:99::2")
	// Addresses in hand-made VLAN 10 frames.
	vlA4 = netip.MustParseAddr("10.98.0.1")
	vlB4 = netip.MustParseAddr("10.98.0.2")
)

type pair struct {
	nsA, nsB   string
	hA, hB     netns.NsHandle
	macA, macB net.HardwareAddr
	idxA, idxB int
}

var pairSeq atomic.Int32

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, attaches XDP programs and opens AF_XDP sockets")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip command (make deps-test)")
	}
}

func run(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newPair builds the two namespaces and the veth pair.
func newPair(t testing.TB) *pair {
	t.Helper()
	return newPairQ(t, 1)
}

// newPairQ builds the pair with queues RX and TX queues on each veth end.
func newPairQ(t testing.TB, queues int) *pair {
	t.Helper()
	requireRoot(t)
	prefix := fmt.Sprintf("mlbaf%d-%d", os.Getpid(), pairSeq.Add(1))
	p := &pair{nsA: prefix + "a", nsB: prefix + "b"}
	t.Cleanup(func() {
		for _, ns := range []string{p.nsA, p.nsB} {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	run(t, "ip", "netns", "add", p.nsA)
	run(t, "ip", "netns", "add", p.nsB)
	q := strconv.Itoa(queues)
	run(t, "ip", "-n", p.nsA, "link", "add", "xa", "numrxqueues", q, "numtxqueues", q, "type", "veth",
		"peer", "name", "xb", "numrxqueues", q, "numtxqueues", q, "netns", p.nsB)
	for _, c := range [][]string{
		{"-n", p.nsA, "addr", "add", ipA4.String() + "/24", "dev", "xa"},
		{"-n", p.nsA, "addr", "add", ipA6.String() + "/64", "dev", "xa", "nodad"},
		{"-n", p.nsB, "addr", "add", ipB4.String() + "/24", "dev", "xb"},
		{"-n", p.nsB, "addr", "add", ipB6.String() + "/64", "dev", "xb", "nodad"},
		{"-n", p.nsA, "link", "set", "lo", "up"},
		{"-n", p.nsB, "link", "set", "lo", "up"},
		{"-n", p.nsA, "link", "set", "xa", "up"},
		{"-n", p.nsB, "link", "set", "xb", "up"},
	} {
		run(t, append([]string{"ip"}, c...)...)
	}
	// Frames from a veth carry partial checksums unless TX checksum offload
	// is off; VLAN tags stay in the frame only without VLAN TX offload.
	for _, c := range [][]string{{p.nsA, "xa"}, {p.nsB, "xb"}} {
		if out, err := exec.Command("ip", "netns", "exec", c[0], "ethtool", "-K", c[1], "tx", "off", "txvlan", "off").CombinedOutput(); err != nil {
			t.Logf("ethtool -K %s tx off txvlan off: %v %s (frames may carry partial checksums)", c[1], err, out)
		}
	}
	var err error
	if p.hA, err = netns.GetFromName(p.nsA); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.hA.Close() })
	if p.hB, err = netns.GetFromName(p.nsB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.hB.Close() })
	p.macA, p.idxA = linkInfo(t, p.hA, "xa")
	p.macB, p.idxB = linkInfo(t, p.hB, "xb")
	return p
}

func linkInfo(t testing.TB, h netns.NsHandle, name string) (net.HardwareAddr, int) {
	t.Helper()
	var l netlink.Link
	if err := inNS(h, func() (err error) { l, err = netlink.LinkByName(name); return err }); err != nil {
		t.Fatal(err)
	}
	return l.Attrs().HardwareAddr, l.Attrs().Index
}

// passProgram loads an XDP program that passes every frame to the kernel,
// as a stand-in for a program someone else attached.
func passProgram(t testing.TB) *ebpf.Program {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "pass", Type: ebpf.XDP, License: "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
	})
	if err != nil {
		t.Fatalf("load an XDP_PASS program: %v", err)
	}
	return prog
}

// attachPass attaches passProgram to ifname in namespace h until the test
// ends: a veth receives the frames its peer sends with XDP_TX only when it
// has an XDP program.
func attachPass(t testing.TB, h netns.NsHandle, ifname string) {
	t.Helper()
	prog := passProgram(t)
	t.Cleanup(func() { prog.Close() })
	var lk link.Link
	if err := inNS(h, func() (err error) { lk, _, err = AttachProgram(prog, ifname, ModeAuto, zerolog.Nop()); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lk.Close() })
}

// inNS runs fn on a thread switched into namespace h. Sockets fn creates stay
// in h and may be used from any goroutine afterwards.
func inNS(h netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return // the thread stays locked and dies with the goroutine
		}
		err = fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// testLogger returns a logger writing to the test log and to buf.
func testLogger(t *testing.T, buf *syncBuffer) zerolog.Logger {
	return zerolog.New(zerolog.MultiLevelWriter(zerolog.NewTestWriter(t), buf)).With().Timestamp().Logger()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// openIn opens a dataplane on xa in namespace nsA.
func (p *pair) open(t *testing.T, cfg Config) *Dataplane {
	t.Helper()
	if cfg.Interface == "" {
		cfg.Interface = "xa"
	}
	if cfg.NumFrames == 0 {
		cfg.NumFrames, cfg.RingSize = 1024, 512 // small: many tests, 2 cores
	}
	var d *Dataplane
	if err := inNS(p.hA, func() (err error) { d, err = Open(cfg); return err }); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// xdpProgID returns the ID of the XDP program on the interface, 0 for none.
func xdpProgID(t *testing.T, h netns.NsHandle, name string) uint32 {
	t.Helper()
	var l netlink.Link
	if err := inNS(h, func() (err error) { l, err = netlink.LinkByName(name); return err }); err != nil {
		t.Fatal(err)
	}
	if x := l.Attrs().Xdp; x != nil && x.Attached {
		return x.ProgId
	}
	return 0
}

// frame is a received frame, copied out of the UMEM.
type frame []byte

// collect receives from s until want frames arrived or timeout, copying them
// out and releasing the descriptors.
func collect(s *Socket, want int, timeout time.Duration) []frame {
	var out []frame
	descs := make([]Desc, 64)
	deadline := time.Now().Add(timeout)
	for len(out) < want && time.Now().Before(deadline) {
		n := s.Receive(descs)
		if n == 0 {
			s.Wait(20 * time.Millisecond)
			continue
		}
		for _, d := range descs[:n] {
			out = append(out, append(frame(nil), s.Frame(d)...))
		}
		s.Release(descs[:n])
	}
	return out
}

// l3 returns the ethertype and L3 offset, skipping one VLAN tag.
func (f frame) l3() (uint16, int) {
	et := binary.BigEndian.Uint16(f[12:])
	if et == 0x8100 {
		return binary.BigEndian.Uint16(f[16:]), 18
	}
	return et, 14
}

func (f frame) vlan() bool { return binary.BigEndian.Uint16(f[12:]) == 0x8100 }

// udpDst returns the IPv4 destination and UDP/TCP destination port of an
// unfragmented (or first-fragment) IPv4 frame; frag reports a non-first fragment.
func (f frame) v4() (dst netip.Addr, proto uint8, dport uint16, frag bool) {
	et, o := f.l3()
	if et != 0x0800 {
		return
	}
	dst = netip.AddrFrom4([4]byte(f[o+16 : o+20]))
	proto = f[o+9]
	if binary.BigEndian.Uint16(f[o+6:])&0x1fff != 0 {
		return dst, proto, 0, true
	}
	ihl := int(f[o]&0xf) * 4
	return dst, proto, binary.BigEndian.Uint16(f[o+ihl+2:]), false
}

func csum(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// udp4 builds Ethernet/IPv4/UDP with valid checksums (UDP checksum 0).
func udp4(dst, src net.HardwareAddr, sip, dip netip.Addr, sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 14+20+8+len(payload))
	copy(b, dst)
	copy(b[6:], src)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:], sip.AsSlice())
	copy(ip[16:], dip.AsSlice())
	binary.BigEndian.PutUint16(ip[10:], fold(csum(0, ip[:20])))
	u := ip[20:]
	binary.BigEndian.PutUint16(u, sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	return b
}

// udp6 builds Ethernet/IPv6/[ext headers]/UDP with a valid UDP checksum;
// exts are (next-header-less) extension header types, each 8 bytes of PadN.
func udp6(dst, src net.HardwareAddr, sip, dip netip.Addr, sport, dport uint16, payload []byte, exts ...uint8) []byte {
	ext := len(exts) * 8
	b := make([]byte, 14+40+ext+8+len(payload))
	copy(b, dst)
	copy(b[6:], src)
	binary.BigEndian.PutUint16(b[12:], 0x86dd)
	ip := b[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(ext+8+len(payload)))
	ip[7] = 64
	copy(ip[8:], sip.AsSlice())
	copy(ip[24:], dip.AsSlice())
	next := &ip[6]
	h := ip[40:]
	for _, e := range exts {
		*next = e
		next = &h[0]
		h[1] = 0          // length: 8 bytes
		h[2], h[3] = 1, 4 // PadN option, 4 bytes
		h = h[8:]
	}
	*next = 17
	u := h
	binary.BigEndian.PutUint16(u, sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	sum := csum(0, ip[8:40])
	sum += uint32(8 + len(payload))
	sum += 17
	sum = csum(sum, u[:8+len(payload)])
	binary.BigEndian.PutUint16(u[6:], fold(sum))
	return b
}

// rawSender opens an AF_PACKET socket on ifindex in namespace h.
func rawSender(t *testing.T, h netns.NsHandle, ifindex int) func([]byte) {
	t.Helper()
	var fd int
	if err := inNS(h, func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	sa := &unix.SockaddrLinklayer{Ifindex: ifindex, Halen: 6}
	return func(b []byte) {
		if err := unix.Sendto(fd, b, 0, sa); err != nil {
			t.Errorf("send raw frame: %v", err)
		}
	}
}

// listenUDP listens in namespace h and returns the connection.
func listenUDP(t *testing.T, h netns.NsHandle, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := inNS(h, func() (err error) { c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr)); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialUDP returns a UDP socket in namespace h connected to addr.
func dialUDP(t *testing.T, h netns.NsHandle, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := inNS(h, func() (err error) { c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr)); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// countUDP reads datagrams from c until want arrived or timeout; it returns
// how many arrived.
func countUDP(c *net.UDPConn, want int, timeout time.Duration) int {
	buf := make([]byte, 65536)
	n := 0
	deadline := time.Now().Add(timeout)
	for n < want {
		c.SetReadDeadline(deadline)
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
			break
		}
		n++
	}
	return n
}

// pingable sends one ICMP echo request from namespace h to dst over a raw
// socket and reports whether the reply came back.
func pingable(t *testing.T, h netns.NsHandle, dst netip.Addr) bool {
	t.Helper()
	var fd int
	if err := inNS(h, func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	req := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1, 'm', 'l', 'b'}
	binary.BigEndian.PutUint16(req[2:], fold(csum(0, req)))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrInet4{Addr: dst.As4()}); err != nil {
		t.Fatalf("send ICMP echo: %v", err)
	}
	buf := make([]byte, 1500)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return false
		}
		ihl := int(buf[0]&0xf) * 4
		if n >= ihl+8 && buf[ihl] == 0 && buf[ihl+4] == 0x12 && buf[ihl+5] == 0x34 {
			return true
		}
	}
}

// tagged inserts an 802.1Q tag with VLAN id vid after the MAC addresses.
func tagged(b []byte, vid uint16) []byte {
	out := make([]byte, 0, len(b)+4)
	out = append(out, b[:12]...)
	out = append(out, 0x81, 0x00, byte(vid>>8), byte(vid))
	return append(out, b[12:]...)
}
