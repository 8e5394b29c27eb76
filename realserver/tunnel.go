package realserver

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/medialb/medialb/config"
)

// Tunnel device names SetupTunnel creates on a real server: one per outer
// family and inner family pair that its services need.
const (
	TunnelDev4  = "mlbtun4" // IPv4 in IPv4 (IPIP, and GUE's inner IPv4)
	TunnelDev6  = "mlbtun6" // IPv4 or IPv6 in IPv6 (ip6tnl mode any)
	TunnelDevV6 = "mlbsit"  // IPv6 in IPv4 (SIT)
)

// tunnelServer is one tunnelled real server address with what it must take:
// a direct-routing server's names, VIPs and services, and the GUE ports.
type tunnelServer struct {
	server
	guePorts []uint16
}

// tunnelServers lists the real servers of cfg's forwarding: tunnel services,
// grouped by address, in file order.
func tunnelServers(cfg *config.Config) []*tunnelServer {
	var out []*tunnelServer
	by := map[netip.Addr]*tunnelServer{}
	for _, s := range cfg.Services {
		if s.Layer != config.Layer4 {
			continue
		}
		for _, r := range s.RealServers {
			if r.Forwarding != config.Tunnel {
				continue
			}
			ts := by[r.Address]
			if ts == nil {
				ts = &tunnelServer{server: server{addr: r.Address}}
				by[r.Address] = ts
				out = append(out, ts)
			}
			ts.add(r.Name, s.Address, s.Name)
			if s.Tunnel == config.EncapGUE {
				add(&ts.guePorts, s.GUEPort)
			}
		}
	}
	return out
}

// SetupTunnel writes, for each real server of cfg's tunnel services, the Linux
// commands that let it take encapsulated traffic: a tunnel device in external
// (collect-metadata) mode that decapsulates whatever load balancer sends, the
// VIPs on it (a tunnel device never answers ARP, so there is no ARP problem),
// reverse-path filtering off for it (the client's packets arrive on it, the
// answers leave through the NIC), and for GUE the fou receive port. Windows
// has no IPIP/GUE decapsulation: os "windows" writes why instead.
func SetupTunnel(w io.Writer, cfg *config.Config, os string) error {
	if os != "linux" && os != "windows" {
		return fmt.Errorf("real-server setup: unknown --os %q (linux or windows)", os)
	}
	srvs := tunnelServers(cfg)
	if len(srvs) == 0 {
		_, err := fmt.Fprintf(w, "# %s has no tunnel (forwarding: tunnel) virtual service\n", cfg.File)
		return err
	}
	return writeServers(w, srvs, "tunnelled real server", func(b *strings.Builder, s *tunnelServer) {
		if os == "windows" {
			b.WriteString("# Windows cannot decapsulate IPIP or GUE: use a Linux real server, or forwarding: direct-routing on the load balancer's segment\n")
		} else {
			tunnelLinux(b, s)
		}
	})
}

// TunnelCommands returns the Linux commands of one tunnelled real server
// address (for labs that run them): the lines of SetupTunnel without comments.
func TunnelCommands(cfg *config.Config, addr netip.Addr) []string {
	var b strings.Builder
	for _, s := range tunnelServers(cfg) {
		if s.addr == addr {
			tunnelLinux(&b, s)
		}
	}
	var out []string
	for l := range strings.Lines(b.String()) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func tunnelLinux(b *strings.Builder, s *tunnelServer) {
	outer6 := s.addr.Is6()
	inner4 := slices.ContainsFunc(s.vips, netip.Addr.Is4)
	inner6 := slices.ContainsFunc(s.vips, netip.Addr.Is6)
	b.WriteString("# as root; add these to your network configuration to keep them across reboots\n")
	var devs []string
	switch {
	case outer6:
		b.WriteString("modprobe ip6_tunnel\n")
		fmt.Fprintf(b, "ip -6 link add name %s type ip6tnl external mode any\n", TunnelDev6)
		devs = append(devs, TunnelDev6)
	default:
		if inner4 {
			b.WriteString("modprobe ipip\n")
			fmt.Fprintf(b, "ip link add name %s type ipip external\n", TunnelDev4)
			devs = append(devs, TunnelDev4)
		}
		if inner6 {
			b.WriteString("modprobe sit\n")
			fmt.Fprintf(b, "ip link add name %s type sit external\n", TunnelDevV6)
			devs = append(devs, TunnelDevV6)
		}
	}
	for _, p := range s.guePorts {
		b.WriteString("# GUE: the fou module decapsulates UDP to this port (direct IP in UDP) and hands it to the tunnel device\n")
		b.WriteString("modprobe fou\n")
		if outer6 {
			fmt.Fprintf(b, "ip fou add port %d gue -6\n", p)
		} else {
			fmt.Fprintf(b, "ip fou add port %d gue\n", p)
		}
	}
	for _, d := range devs {
		fmt.Fprintf(b, "ip link set %s up\n", d)
	}
	b.WriteString("# the VIPs on the tunnel device: the decapsulated packets are for them; a tunnel device answers no ARP\n")
	dev := devs[0]
	for _, v := range s.vips {
		if v.Is4() {
			if !outer6 {
				dev = TunnelDev4
			}
			fmt.Fprintf(b, "ip addr add %s/32 dev %s\n", v, dev)
		} else {
			if !outer6 {
				dev = TunnelDevV6
			}
			fmt.Fprintf(b, "ip addr add %s/128 dev %s\n", v, dev)
		}
	}
	b.WriteString("# the clients' packets arrive on the tunnel, the answers leave through the NIC: no reverse-path filter there\n")
	rp := []string{"net.ipv4.conf.all.rp_filter=0"}
	for _, d := range devs {
		rp = append(rp, "net.ipv4.conf."+d+".rp_filter=0")
	}
	fmt.Fprintf(b, "sysctl -w %s\n", strings.Join(rp, " "))
	b.WriteString("# optional: advertise an MSS that leaves room for the tunnel's header, so TCP clients never need the load balancer's ICMP too-big\n")
	b.WriteString("#   ip route change default via GATEWAY dev NIC advmss 1400\n")
}
