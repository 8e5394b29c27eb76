package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/probe"
)

// icmpCounter reads one ICMP counter of a namespace: InDestUnreachs from
// /proc/net/snmp (IPv4) or Icmp6InPktTooBigs from /proc/net/snmp6.
func icmpCounter(t *testing.T, ns string, v6 bool) int64 {
	t.Helper()
	file, name := "/proc/net/snmp", "InDestUnreachs"
	if v6 {
		file, name = "/proc/net/snmp6", "Icmp6InPktTooBigs"
	}
	out, err := lab.Exec(ns, "cat", file).Output()
	if err != nil {
		t.Fatalf("read %s in %s: %v", file, ns, err)
	}
	lines := strings.Split(string(out), "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if v6 && len(f) == 2 && f[0] == name {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
		// snmp: a header line "Icmp: InMsgs InErrors ..." then the values line.
		if !v6 && len(f) > 1 && f[0] == "Icmp:" && i+1 < len(lines) {
			vals := strings.Fields(lines[i+1])
			for j, h := range f {
				if h == name && j < len(vals) {
					n, _ := strconv.ParseInt(vals[j], 10, 64)
					return n
				}
			}
		}
	}
	t.Fatalf("%s: no %s in %s", ns, name, file)
	return 0
}

// sendICMPError sends, from router (an address of the client namespace), an ICMP
// frag-needed (IPv4) or packet-too-big (IPv6) error to vip quoting a TCP segment from
// vip:1935 to client, as a router on the path between a real server and the client
// does. The kernel adds the outer IP header (and the ICMPv6 checksum).
func sendICMPError(l *lab.Lab, router, vip netip.Addr, client netip.AddrPort) error {
	quote := make([]byte, 0, 48)
	if vip.Is4() {
		ip := make([]byte, 20)
		ip[0], ip[8], ip[9] = 0x45, 60, 6
		binary.BigEndian.PutUint16(ip[2:], 1500)
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		copy(ip[12:], vip.AsSlice())
		copy(ip[16:], client.Addr().AsSlice())
		quote = append(quote, ip...)
	} else {
		ip := make([]byte, 40)
		ip[0], ip[6], ip[7] = 0x60, 6, 60
		binary.BigEndian.PutUint16(ip[4:], 1440)
		copy(ip[8:], vip.AsSlice())
		copy(ip[24:], client.Addr().AsSlice())
		quote = append(quote, ip...)
	}
	l4 := make([]byte, 8)
	binary.BigEndian.PutUint16(l4[0:], 1935)
	binary.BigEndian.PutUint16(l4[2:], client.Port())
	binary.BigEndian.PutUint32(l4[4:], 0x01020304)
	quote = append(quote, l4...)
	var msg []byte
	if vip.Is4() {
		msg = append([]byte{3, 4, 0, 0, 0, 0, 0x04, 0xd8}, quote...) // MTU 1240
		binary.BigEndian.PutUint16(msg[2:], inetChecksum(msg))
	} else {
		msg = append([]byte{2, 0, 0, 0, 0, 0, 0x04, 0xd8}, quote...)
	}
	return lab.Do(l.Client.NS, func() error {
		fam, proto := syscall.AF_INET, syscall.IPPROTO_ICMP
		var sa, to syscall.Sockaddr
		if vip.Is4() {
			sa, to = &syscall.SockaddrInet4{Addr: router.As4()}, &syscall.SockaddrInet4{Addr: vip.As4()}
		} else {
			fam, proto = syscall.AF_INET6, syscall.IPPROTO_ICMPV6
			sa, to = &syscall.SockaddrInet6{Addr: router.As16()}, &syscall.SockaddrInet6{Addr: vip.As16()}
		}
		fd, err := syscall.Socket(fam, syscall.SOCK_RAW, proto)
		if err != nil {
			return fmt.Errorf("raw ICMP socket: %w", err)
		}
		defer syscall.Close(fd)
		if err := syscall.Bind(fd, sa); err != nil {
			return fmt.Errorf("bind raw socket to %s: %w", router, err)
		}
		return syscall.Sendto(fd, msg, 0, to)
	})
}

// inetChecksum is the Internet checksum of b.
func inetChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// TestL4ICMPErrors: frag-needed and packet-too-big errors that a router sends to the
// VIP about a live TCP flow reach the flow's real server, and no other; echo requests
// to the VIP stay the load balancer kernel's.
func TestL4ICMPErrors(t *testing.T) {
	e := newEnv(t, "icm", lab.Options{Clients: 8})
	e.start(l4Config)
	e.waitChecked(15 * time.Second)
	ctx := context.Background()
	for _, fam := range []struct {
		name string
		vip  netip.Addr
		srcs []netip.Addr
		v6   bool
	}{
		{"ipv4", netip.MustParseAddr("192.168.94.110"), e.lab.Client.Sources4, false},
		{"ipv6", netip.MustParseAddr("fd94::110"), e.lab.Client.Sources6, true},
	} {
		t.Run(fam.name, func(t *testing.T) {
			client, router := fam.srcs[0], fam.srcs[len(fam.srcs)-1]
			c, err := e.lab.DialTCP(ctx, client, netip.AddrPortFrom(fam.vip, 1935))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(probe.Timeout))
			if _, err := io.WriteString(c, "hello\n"); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			rep, err := probe.Parse(line)
			if err != nil {
				t.Fatal(err)
			}
			local := netip.MustParseAddrPort(c.LocalAddr().(*net.TCPAddr).String())
			before := map[string]int64{}
			for _, s := range e.lab.Servers {
				before[s.Name] = icmpCounter(t, s.NS, fam.v6)
			}
			const n = 5
			for range n {
				if err := sendICMPError(e.lab, router, fam.vip, netip.AddrPortFrom(local.Addr().Unmap(), local.Port())); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(3 * time.Second)
			for {
				got := map[string]int64{}
				for _, s := range e.lab.Servers {
					got[s.Name] = icmpCounter(t, s.NS, fam.v6) - before[s.Name]
				}
				ok := got[rep.Server] >= n
				for name, d := range got {
					if name != rep.Server && d != 0 {
						t.Fatalf("%s received %d of the errors; only the flow's server %s should: %v", name, d, rep.Server, got)
					}
				}
				if ok {
					t.Logf("errors about %s's flow (server %s) arrived: %v", local, rep.Server, got)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the flow's server %s received %d of %d errors: %v", rep.Server, got[rep.Server], n, got)
				}
				time.Sleep(100 * time.Millisecond)
			}
			// The flow still works after its server lowered its path MTU.
			if _, err := io.WriteString(c, "again\n"); err != nil {
				t.Fatal(err)
			}
		})
	}
	code, body, err := e.proc.API(ctx, "GET", "9443", "/metrics", "loadbalancer", "loadbalancer")
	if err != nil || code != 200 {
		t.Fatalf("metrics: %d %v", code, err)
	}
	if !strings.Contains(string(body), `medialb_dataplane_icmp_errors_routed_total{kind="frag_needed"} 10`) {
		t.Errorf("metrics do not count 10 routed frag_needed errors:\n%s", grepLines(string(body), "icmp"))
	}
	out, err := lab.Exec(e.lab.Client.NS, "ping", "-c", "1", "-W", "2", "192.168.94.110").CombinedOutput()
	if err != nil {
		t.Errorf("ping the VIP (the load balancer's kernel answers echo requests): %v\n%s", err, out)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
