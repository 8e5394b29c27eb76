package lab

import "net/netip"

// Machine is one machine of the lab's topology, whichever back end runs it: a namespace
// (New), a QEMU guest (lab/vm) or a Vagrant VM (medialb-lab provision).
type Machine struct {
	Name string // "client", "lb1", "lb2" or the real server's name
	Role Role
	Host int // host number in the subnets (the client: 0)
	// Addrs are the machine's addresses on its lab interface, primary first (a client's
	// are its sources).
	Addrs []netip.Prefix
	// OnLink are the other subnets reached on the lab segment without a router.
	OnLink []netip.Prefix
	VIPs   []netip.Addr // real servers: held on lo
}

// Topology returns the machines of the lab o describes, with New's defaults and checks:
// the client, the load balancers, then the real servers in o.Servers order.
func Topology(o Options) ([]Machine, Options, error) {
	if o.Prefix == "" {
		o.Prefix = "topo-" // only checked, never used to name anything here
	}
	o, err := o.withDefaults()
	if err != nil {
		return nil, o, err
	}
	var srv, cli []netip.Prefix
	if !o.NoIPv4 {
		srv, cli = append(srv, o.Subnet4), append(cli, o.ClientSubnet4)
	}
	if !o.NoIPv6 {
		srv, cli = append(srv, o.Subnet6), append(cli, o.ClientSubnet6)
	}
	host := func(h int) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range srv {
			out = append(out, netip.PrefixFrom(hostAddr(p, h), p.Bits()))
		}
		return out
	}
	c := Machine{Name: "client", Role: RoleClient, OnLink: srv}
	for i := 1; i <= o.Clients; i++ {
		for _, p := range cli {
			c.Addrs = append(c.Addrs, netip.PrefixFrom(nthAddr(p, i), p.Bits()))
		}
	}
	out := []Machine{c}
	for i := 1; i <= o.LoadBalancers; i++ {
		out = append(out, Machine{Name: "lb" + string(rune('0'+i)), Role: RoleLoadBalancer, Host: 1 + i, Addrs: host(1 + i), OnLink: cli})
	}
	for _, s := range o.Servers {
		out = append(out, Machine{Name: s.Name, Role: RoleRealServer, Host: s.Host, Addrs: host(s.Host), OnLink: cli, VIPs: o.VIPs})
	}
	return out, o, nil
}

// NewNamespace creates the named network namespace (lab/vm's switch); Cleanup with a
// prefix of the name removes it and kills what runs in it.
func NewNamespace(name string) error { return newNS(name) }

// SweepStale removes the namespaces of labs made with Prefix and the same tag as prefix
// whose process is gone (a test binary killed by its timeout runs no cleanup).
func SweepStale(prefix string) { sweepStale(prefix) }
