package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/probe"
)

// l4Frame builds an Ethernet frame from the client to the load balancer's MAC with a
// TCP SYN (proto 6) or an 8-byte UDP datagram (17) from src:40123 to dst:port, with
// correct checksums.
func l4Frame(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, proto byte, port uint16) []byte {
	var l4 []byte
	if proto == syscall.IPPROTO_TCP {
		l4 = make([]byte, 20)
		binary.BigEndian.PutUint32(l4[4:], 0x11223344) // sequence number
		l4[12], l4[13] = 5<<4, 0x02                    // data offset 5, SYN
		binary.BigEndian.PutUint16(l4[14:], 64240)     // window
	} else {
		l4 = append(make([]byte, 8), "odd port"...)
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	}
	binary.BigEndian.PutUint16(l4[0:], 40123)
	binary.BigEndian.PutUint16(l4[2:], port)
	// Pseudo-header: addresses, protocol, L4 length.
	pseudo := append(append([]byte{}, src.AsSlice()...), dst.AsSlice()...)
	pseudo = append(pseudo, 0, proto, byte(len(l4)>>8), byte(len(l4)))
	ck := 16
	if proto == syscall.IPPROTO_UDP {
		ck = 6
	}
	binary.BigEndian.PutUint16(l4[ck:], inetChecksum(append(pseudo, l4...)))

	var ip []byte
	typ := uint16(0x0800)
	if src.Is4() {
		ip = make([]byte, 20)
		ip[0], ip[8], ip[9] = 0x45, 64, proto
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		copy(ip[12:], src.AsSlice())
		copy(ip[16:], dst.AsSlice())
		binary.BigEndian.PutUint16(ip[10:], inetChecksum(ip))
	} else {
		typ = 0x86dd
		ip = make([]byte, 40)
		ip[0], ip[6], ip[7] = 0x60, proto, 64
		binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
		copy(ip[8:], src.AsSlice())
		copy(ip[24:], dst.AsSlice())
	}
	f := append(append([]byte{}, dstMAC...), srcMAC...)
	f = binary.BigEndian.AppendUint16(f, typ)
	return append(append(f, ip...), l4...)
}

// answer is a reply to one of l4Frame's probes seen on the client's link: who sent it
// (source MAC) and what it answers (protocol and probed port).
type answer struct {
	mac   string
	proto byte
	port  uint16
}

// answersFrom decodes a frame received by the client: a TCP segment from vip:port to
// src:40123 (the RST to a SYN) or an ICMP/ICMPv6 destination unreachable from vip
// quoting UDP to vip:port.
func answersFrom(f []byte, vip netip.Addr) (answer, bool) {
	if len(f) < 14 {
		return answer{}, false
	}
	a := answer{mac: net.HardwareAddr(f[6:12]).String()}
	typ, p := binary.BigEndian.Uint16(f[12:]), f[14:]
	var from netip.Addr
	var proto byte
	var l4 []byte
	switch {
	case typ == 0x0800 && len(p) >= 20 && vip.Is4():
		from, _ = netip.AddrFromSlice(p[12:16])
		proto, l4 = p[9], p[int(p[0]&15)*4:]
	case typ == 0x86dd && len(p) >= 40 && vip.Is6():
		from, _ = netip.AddrFromSlice(p[8:24])
		proto, l4 = p[6], p[40:]
	default:
		return answer{}, false
	}
	if from != vip {
		return answer{}, false
	}
	switch {
	case proto == syscall.IPPROTO_TCP && len(l4) >= 4 && binary.BigEndian.Uint16(l4[2:]) == 40123:
		a.proto, a.port = syscall.IPPROTO_TCP, binary.BigEndian.Uint16(l4)
	case (proto == syscall.IPPROTO_ICMP && len(l4) >= 8+20+4 && l4[0] == 3) ||
		(proto == syscall.IPPROTO_ICMPV6 && len(l4) >= 8+40+4 && l4[0] == 1):
		q := l4[8:]
		off, qproto := 20, q[9]
		if vip.Is6() {
			off, qproto = 40, q[6]
		}
		if qproto != syscall.IPPROTO_UDP {
			return answer{}, false
		}
		a.proto, a.port = syscall.IPPROTO_UDP, binary.BigEndian.Uint16(q[off+2:])
	default:
		return answer{}, false
	}
	return a, true
}

// captureAnswers reads, for d, what the client's link receives from vip that answers
// l4Frame's probes.
func captureAnswers(ns string, ifname string, vip netip.Addr, d time.Duration, ready chan<- error) ([]answer, error) {
	var out []answer
	err := lab.Do(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			ready <- err
			return err
		}
		fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(syscall.ETH_P_ALL)))
		if err != nil {
			ready <- err
			return fmt.Errorf("packet socket: %w", err)
		}
		defer syscall.Close(fd)
		if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			ready <- err
			return fmt.Errorf("bind packet socket to %s: %w", ifname, err)
		}
		tv := syscall.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
		ready <- nil
		buf := make([]byte, 2048)
		for end := time.Now().Add(d); time.Now().Before(end); {
			n, _, err := syscall.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			if a, ok := answersFrom(buf[:n], vip); ok {
				out = append(out, a)
			}
		}
		return nil
	})
	return out, err
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestL4FragmentsAndOddPorts, from the client's namespace: a UDP datagram larger than
// the MTU, fragmented by the client's kernel, reaches the client's real server whole
// (its non-first fragments, which carry no port, go to the same server as the first:
// the choice follows the client's address), for IPv4 and IPv6; TCP and UDP to VIP port
// 0 and to a port outside the service's ports are answered by the load balancer's
// kernel (a RST, a port unreachable from its MAC), not forwarded to a real server.
func TestL4FragmentsAndOddPorts(t *testing.T) {
	e := newEnv(t, "odd", lab.Options{Clients: 4})
	e.start(l4Config)
	e.waitChecked(15 * time.Second)
	ctx := context.Background()
	lb := e.lab.LBs[0]
	servers := map[string]string{}
	for _, s := range e.lab.Servers {
		servers[s.MAC.String()] = s.Name
	}
	for _, fam := range []struct {
		name string
		vip  netip.Addr
		srcs []netip.Addr
	}{
		{"ipv4", netip.MustParseAddr("192.168.94.110"), e.lab.Client.Sources4},
		{"ipv6", netip.MustParseAddr("fd94::110"), e.lab.Client.Sources6},
	} {
		t.Run(fam.name, func(t *testing.T) {
			target := netip.AddrPortFrom(fam.vip, e.lab.MediaPorts[0])
			for _, src := range fam.srcs[:2] {
				small, err := probe.One(ctx, e.lab, src, probe.Target{Proto: "udp", Addr: target})
				if err != nil {
					t.Fatalf("small datagram from %s: %v", src, err)
				}
				c, err := e.lab.DialUDP(src, target)
				if err != nil {
					t.Fatal(err)
				}
				big := []byte("hello from " + src.String() + " " + strings.Repeat("x", 4000) + "\n")
				var rep probe.Reply
				for try := 0; try < 3; try++ {
					c.SetDeadline(time.Now().Add(time.Second))
					if _, err = c.Write(big); err != nil {
						break
					}
					buf := make([]byte, 1500)
					var n int
					if n, err = c.Read(buf); err == nil {
						rep, err = probe.Parse(string(buf[:n]))
						break
					}
				}
				c.Close()
				if err != nil {
					t.Fatalf("datagram of %d bytes (fragmented) from %s: %v: its fragments did not all reach one server", len(big), src, err)
				}
				if rep.Server != small.Server {
					t.Errorf("fragmented datagram from %s answered by %s, its small ones by %s", src, rep.Server, small.Server)
				}
			}

			// TCP to 1935 (a service port) is the control: a real server answers it
			// (SYN-ACK), which shows that the answers' MACs tell the two apart.
			probes := []answer{{proto: syscall.IPPROTO_TCP, port: 0}, {proto: syscall.IPPROTO_TCP, port: 9999},
				{proto: syscall.IPPROTO_UDP, port: 0}, {proto: syscall.IPPROTO_UDP, port: 9999}, {proto: syscall.IPPROTO_TCP, port: 1935}}
			var frames [][]byte
			for _, p := range probes {
				frames = append(frames, l4Frame(e.lab.Client.MAC, lb.MAC, fam.srcs[0], fam.vip, p.proto, p.port))
			}
			ready := make(chan error, 1)
			got := make(chan []answer, 1)
			go func() {
				as, err := captureAnswers(e.lab.Client.NS, e.lab.Client.Link, fam.vip, 2*time.Second, ready)
				if err != nil {
					t.Error(err)
				}
				got <- as
			}()
			if err := <-ready; err != nil {
				t.Fatal(err)
			}
			if err := sendRaw(e.lab.Client.NS, e.lab.Client.Link, frames); err != nil {
				t.Fatal(err)
			}
			answers := <-got
			for _, p := range probes {
				what := fmt.Sprintf("%s to VIP port %d", map[byte]string{6: "TCP", 17: "UDP"}[p.proto], p.port)
				found := false
				for _, a := range answers {
					if a.proto != p.proto || a.port != p.port {
						continue
					}
					found = true
					if p.port == 1935 {
						if _, ok := servers[a.mac]; !ok {
							t.Errorf("%s: answered from MAC %s, want a real server's (direct routing)", what, a.mac)
						}
						continue
					}
					if name, ok := servers[a.mac]; ok {
						t.Errorf("%s: answered by real server %s: it was forwarded, want the load balancer's kernel", what, name)
					} else if a.mac != lb.MAC.String() {
						t.Errorf("%s: answered from MAC %s, want the load balancer's %s", what, a.mac, lb.MAC)
					}
				}
				if !found {
					t.Errorf("%s: no answer (RST, SYN-ACK or port unreachable); answers seen: %v", what, answers)
				}
			}
		})
	}
	if n := metricLabel(t, e, "medialb_dataplane_dropped_packets_total", `reason="fragment_no_service"`); n != 0 {
		t.Errorf("fragment_no_service %v, want 0", n)
	}
	// Every drop path has its series from the start, at 0 until it happens.
	_, body := e.apiDo("GET", "/metrics")
	for _, want := range []string{
		`medialb_dataplane_dropped_packets_total{reason="malformed_icmp"} `,
		`medialb_dataplane_dropped_packets_total{reason="icmp_no_service"} `,
		`medialb_dataplane_dropped_packets_total{reason="fragment_no_service"} `,
		`medialb_dataplane_fastpath_decisions_total{result="refused_full"} `,
		`medialb_service_persistence_evictions_total{service="Harmonic_Traffic"} `,
		`medialb_service_persistence_refused_total{service="Harmonic_Traffic"} `,
	} {
		if !strings.Contains(string(body), "\n"+want) {
			t.Errorf("/metrics has no %s... series", strings.TrimSpace(want))
		}
	}
}
