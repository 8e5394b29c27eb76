// Command medialb-lab prepares a machine of the lab topology when the lab runs on
// virtual machines (the Vagrantfile) instead of network namespaces, with the same code
// the namespace lab (package lab) uses for its nodes:
//
//	medialb-lab provision --role realserver --name HT1 --address 192.168.94.115/24 \
//	    --vip 192.168.94.100 --vip 192.168.94.110
//	medialb-lab provision --role loadbalancer --name lb1 --address 192.168.94.2/24
//	medialb-lab provision --role client --name client --address 192.168.94.50/24 \
//	    --sources 192.168.94.51/24-20
//
// A real server gets the VIPs on lo and arp_ignore=1, arp_announce=2 (all, default and
// its interface); a client gets extra source addresses; a load balancer needs nothing
// (medialb brings the VIPs up itself), the command only checks its interface. It can run
// again: what is there already is left alone. It needs root.
//
// On the client VM, `medialb-lab check` probes both VIPs from many source addresses
// (package lab/probe, as the namespace lab's tests do) and fails unless every probe was
// answered, each source kept one real server on every port and protocol, every real
// server got clients, and the servers saw the client's own address through the layer-4
// VIP and a load balancer's through the layer-7 one:
//
//	medialb-lab check --sources 192.168.94.51/24-20 --l7 192.168.94.100 --l4 192.168.94.110 \
//	    --lb 192.168.94.2 --servers HT1,HT2
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/medialb/medialb/lab"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "medialb-lab:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "check" {
		c, err := parseCheck(args[1:])
		if err != nil {
			return err
		}
		return runCheck(context.Background(), c)
	}
	if len(args) == 0 || args[0] != "provision" {
		return errors.New("usage: medialb-lab provision --role realserver|loadbalancer|client --address IP/LEN [--interface IF] [--vip IP]... [--sources IP/LEN-COUNT]\n" +
			"       medialb-lab check --sources IP/LEN-COUNT --l7 VIP --l4 VIP --lb IP[,IP] --servers NAME,NAME [--l7-ports P,P] [--l4-ports P,...]")
	}
	p, name, err := parseProvision(args[1:])
	if err != nil {
		return err
	}
	iface, err := p.Apply()
	if err != nil {
		return err
	}
	fmt.Printf("medialb-lab: %s provisioned as %s on %s", name, p.Role, iface)
	if len(p.VIPs) > 0 {
		fmt.Printf(", VIPs %v on lo, arp_ignore=1 arp_announce=2", p.VIPs)
	}
	if len(p.Sources) > 0 {
		fmt.Printf(", %d source addresses %s..%s", len(p.Sources), p.Sources[0].Addr(), p.Sources[len(p.Sources)-1].Addr())
	}
	fmt.Println()
	return nil
}

// vips collects repeated --vip flags.
type vips []netip.Addr

func (v *vips) String() string { return fmt.Sprint(*v) }

func (v *vips) Set(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("parse --vip: %w", err)
	}
	*v = append(*v, a)
	return nil
}

func parseProvision(args []string) (lab.Provision, string, error) {
	var p lab.Provision
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	role := fs.String("role", "", "realserver, loadbalancer or client")
	name := fs.String("name", "", "the machine's name in the lab (HT1, lb1, client), for messages")
	iface := fs.String("interface", "", "the NIC on the lab segment (default: the one holding --address)")
	addr := fs.String("address", "", "the machine's own address on the segment, IP/LEN")
	sources := fs.String("sources", "", "client: extra source addresses, FIRST/LEN-COUNT (e.g. 192.168.94.51/24-20)")
	var vs vips
	fs.Var(&vs, "vip", "real server: a VIP to hold on lo (repeat)")
	if err := fs.Parse(args); err != nil {
		return p, "", err
	}
	if fs.NArg() > 0 {
		return p, "", fmt.Errorf("provision: unexpected arguments %q", fs.Args())
	}
	p.Role, p.Interface, p.VIPs = lab.Role(*role), *iface, vs
	if *addr != "" {
		a, err := netip.ParsePrefix(*addr)
		if err != nil {
			return p, "", fmt.Errorf("parse --address: %w", err)
		}
		p.Address = a
	}
	if *sources != "" {
		s, err := parseSources(*sources)
		if err != nil {
			return p, "", err
		}
		p.Sources = s
	}
	return p, *name, nil
}

// parseSources reads FIRST/LEN-COUNT: COUNT consecutive addresses from FIRST.
func parseSources(s string) ([]netip.Prefix, error) {
	first, n, ok := strings.Cut(s, "-")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || count < 1 || count > 4096 {
		return nil, fmt.Errorf("parse --sources %q: want FIRST/LEN-COUNT, COUNT 1..4096", s)
	}
	p, err := netip.ParsePrefix(first)
	if err != nil {
		return nil, fmt.Errorf("parse --sources: %w", err)
	}
	out := make([]netip.Prefix, 0, count)
	a := p.Addr()
	for range count {
		if !a.IsValid() || !p.Masked().Contains(a) {
			return nil, fmt.Errorf("parse --sources %q: runs out of %s", s, p.Masked())
		}
		out = append(out, netip.PrefixFrom(a, p.Bits()))
		a = a.Next()
	}
	return out, nil
}
