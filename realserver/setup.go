package realserver

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/medialb/medialb/config"
)

// Targets lists every real server of the direct-routing services of cfg,
// with the port the path probe uses: the service's first port when it
// carries TCP, else 0 (an ICMP echo).
func Targets(cfg *config.Config) []Target {
	var out []Target
	for _, s := range cfg.Services {
		if s.Layer != config.Layer4 {
			continue
		}
		port := uint16(0)
		if s.Protocol.Has(config.TCP) {
			port = s.Ports.First()
		}
		for _, r := range s.RealServers {
			if r.Forwarding != config.DirectRouting {
				continue // tunnelled: not on the segment (tunnel.go)
			}
			out = append(out, Target{Service: s.Name, VIP: s.Address, Port: port, Server: r.Name, Addr: r.Address})
		}
	}
	return out
}

// server is one real server address with the VIPs it must hold.
type server struct {
	names    []string
	addr     netip.Addr
	vips     []netip.Addr
	services []string
}

// servers groups Targets by real server address, in file order.
func servers(targets []Target) []*server {
	var out []*server
	by := map[netip.Addr]*server{}
	for _, t := range targets {
		s := by[t.Addr]
		if s == nil {
			s = &server{addr: t.Addr}
			by[t.Addr] = s
			out = append(out, s)
		}
		s.add(t.Server, t.VIP, t.Service)
	}
	return out
}

// Setup writes, for each real server of cfg's direct-routing services, the
// commands that let it take direct-routed traffic without the ARP problem:
// os "linux" (the VIPs on lo, arp_ignore and arp_announce, kept across
// reboots) or "windows" (the loopback adapter and weak-host settings, as in
// the Loadbalancer.org guide's section 8.2.1).
func Setup(w io.Writer, cfg *config.Config, os string) error {
	if os != "linux" && os != "windows" {
		return fmt.Errorf("real-server setup: unknown --os %q (linux or windows)", os)
	}
	srvs := servers(Targets(cfg))
	if len(srvs) == 0 {
		_, err := fmt.Fprintf(w, "# %s has no direct-routing (layer 4) virtual service: the real servers need no setup\n", cfg.File)
		return err
	}
	return writeServers(w, srvs, "real server", func(b *strings.Builder, s *server) {
		if os == "linux" {
			linux(b, s)
		} else {
			windows(b, s)
		}
	})
}

// add records a name, VIP and service of s, each once.
func (s *server) add(name string, vip netip.Addr, service string) {
	add(&s.names, name)
	add(&s.vips, vip)
	add(&s.services, service)
}

// add appends v to list unless it holds v already.
func add[T comparable](list *[]T, v T) {
	if !slices.Contains(*list, v) {
		*list = append(*list, v)
	}
}

// base is the server every kind of set-up server holds (tunnelServer embeds it).
func (s *server) base() *server { return s }

// writeServers writes one block per server, blank lines between: a comment
// naming the server, its address and services as role, then what body writes.
func writeServers[S interface{ base() *server }](w io.Writer, srvs []S, role string, body func(*strings.Builder, S)) error {
	var b strings.Builder
	for i, s := range srvs {
		if i > 0 {
			b.WriteString("\n")
		}
		rs := s.base()
		fmt.Fprintf(&b, "# %s (%s): %s of %s\n", strings.Join(rs.names, ", "), rs.addr, role, strings.Join(rs.services, ", "))
		body(&b, s)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func linux(b *strings.Builder, s *server) {
	b.WriteString("# as root; answer ARP only for addresses of the asking interface, announce with the interface's own address\n")
	b.WriteString("sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2\n")
	b.WriteString("printf 'net.ipv4.conf.all.arp_ignore = 1\\nnet.ipv4.conf.all.arp_announce = 2\\n' > /etc/sysctl.d/90-medialb-dr.conf\n")
	b.WriteString("# the VIPs on lo, where they are never announced (add these lines to your network configuration to keep them)\n")
	for _, v := range s.vips {
		if v.Is4() {
			fmt.Fprintf(b, "ip addr add %s/32 dev lo\n", v)
		} else {
			fmt.Fprintf(b, "ip addr add %s/128 dev lo\n", v)
		}
	}
}

func windows(b *strings.Builder, s *server) {
	b.WriteString("# in an elevated command prompt (Windows Server 2012 and later)\n")
	b.WriteString("# 1. add the Microsoft KM-TEST Loopback Adapter: Device Manager > Action > Add legacy hardware > Network adapters > Microsoft > KM-TEST Loopback Adapter\n")
	b.WriteString("# 2. name the adapters \"net\" (the NIC toward the load balancer) and \"loopback\", e.g. netsh interface set interface name=\"Ethernet 2\" newname=\"loopback\"\n")
	b.WriteString("# 3. the VIPs on the loopback adapter, which never answers ARP for them\n")
	for _, v := range s.vips {
		if v.Is4() {
			fmt.Fprintf(b, "netsh interface ipv4 add address \"loopback\" %s 255.255.255.255\n", v)
		} else {
			fmt.Fprintf(b, "netsh interface ipv6 add address \"loopback\" %s/128\n", v)
		}
	}
	b.WriteString("netsh interface ipv4 set interface \"loopback\" metric=254\n")
	b.WriteString("# 4. weak host model: the NIC accepts traffic for the VIPs, the loopback adapter answers from them\n")
	for _, fam := range families(s.vips) {
		fmt.Fprintf(b, "netsh interface %s set interface \"net\" weakhostreceive=enabled\n", fam)
		fmt.Fprintf(b, "netsh interface %s set interface \"loopback\" weakhostreceive=enabled\n", fam)
		fmt.Fprintf(b, "netsh interface %s set interface \"loopback\" weakhostsend=enabled\n", fam)
	}
	b.WriteString("# 5. loopback adapter properties: untick \"Register this connection's addresses in DNS\"\n")
}

func families(vips []netip.Addr) []string {
	var out []string
	if slices.ContainsFunc(vips, netip.Addr.Is4) {
		out = append(out, "ipv4")
	}
	if slices.ContainsFunc(vips, netip.Addr.Is6) {
		out = append(out, "ipv6")
	}
	return out
}

// WriteReport writes one line per result: service, server name, address,
// and "ok" or its problems; it returns the number of results with problems.
func WriteReport(w io.Writer, rep Report) (int, error) {
	bad := 0
	var b strings.Builder
	for _, r := range rep.Results {
		status := "ok"
		if len(r.Problems) > 0 {
			bad++
			status = strings.Join(r.Problems, "; ")
		}
		fmt.Fprintf(&b, "%s %s %s: %s\n", r.Service, r.Server, r.Addr, status)
	}
	for _, s := range rep.Strangers {
		fmt.Fprintf(&b, "warning: %s answers ARP/ND for VIP %s but is no real server of it, nor this node or its HA peer\n", macString(s.MAC), s.VIP)
	}
	_, err := io.WriteString(w, b.String())
	return bad, err
}

func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}
