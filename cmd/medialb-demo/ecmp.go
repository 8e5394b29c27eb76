package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/ecmp"
	"github.com/medialb/medialb/lab/lbproc"
)

// ecmpStep is the scale-out step: a lab of its own with an FRR router between the
// clients and two medialb nodes that announce the traffic VIP over BGP; it shows the
// router's two paths, how it spreads the clients, and a node drained without a broken
// connection. Everything it builds is gone when it returns.
func (d *demo) ecmpStep() error {
	step("11. scale out: two active nodes behind an FRR router (BGP ECMP)")
	l, err := lab.New(lab.Options{Prefix: lab.Prefix("dme"), NoIPv6: true, LoadBalancers: 2, Clients: 40})
	if err != nil {
		return err
	}
	defer l.Close()
	if err := l.StartVOS(filepath.Join(d.bin, "vossim")); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "medialb-demo-ecmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c, err := ecmp.New(l, d.bin, dir)
	if err != nil {
		return err
	}
	defer c.Close()
	c.Echo = func(node string, ev lbproc.Event) {
		if m := ev.Msg(); strings.HasPrefix(m, "BGP") || strings.HasPrefix(m, "node ") || ev.Str("level") == "error" {
			fmt.Printf("   %s| %s\n", node, render(ev))
		}
	}
	fmt.Printf("   router %s: FRR zebra + bgpd (AS %d, maximum-paths 8) on %s, clients behind it on their own link\n",
		c.Router.NS, c.Router.ASN, c.Router.Addr4)
	lb1, lb2 := c.Nodes[0], c.Nodes[1]
	for _, n := range c.Nodes {
		if err := c.Start(n); err != nil {
			return err
		}
		fmt.Printf("   $ ip netns exec %s medialb run --config %s   (bgp: AS 65010, peer %s)\n", n.NS, n.Config, c.Router.Addr4)
	}
	if err := c.WaitAnnounced(d.ctx, 30*time.Second, lb1, lb2); err != nil {
		return err
	}
	if _, err := c.WaitPaths(d.ctx, 10*time.Second, lb1, lb2); err != nil {
		return err
	}
	if out, err := c.Router.VTY("show ip route " + ecmp.VIP.String()); err == nil {
		fmt.Printf("   router$ vtysh -c 'show ip route %s'\n%s", ecmp.VIP, indent(out))
	}
	srcs := l.Client.Sources4
	spread, _, err := c.Spread(srcs)
	if err != nil {
		return err
	}
	fmt.Printf("   the router's ECMP spreads the %d clients: lb1 %d, lb2 %d\n", len(srcs), spread["lb1"], spread["lb2"])
	f, err := ecmp.Open(d.ctx, l, srcs[:20])
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Println("   20 clients hold a TCP connection and a UDP stream through the VIP (a message every 20ms)")
	ev, err := c.Measure(d.ctx, f, "drain", srcs[:20], 10*time.Second,
		func() error { return c.Drain(d.ctx, lb1) }, func() []*ecmp.Node { return []*ecmp.Node{lb2} })
	if err != nil {
		return err
	}
	k := ev.Counts
	fmt.Printf("   POST /api/v1/node/drain on lb1: the router sends nothing to lb1 after %v; %d clients moved to lb2;\n",
		ev.Router.Round(time.Millisecond), ev.Moved)
	fmt.Printf("   TCP connections broken: %d of %d; flows answered by another real server: %d; UDP datagrams lost: %d of %d;\n",
		k.TCPBroken, k.TCP, k.TCPMoved+k.UDPMoved, k.UDPLost, k.UDPSent)
	fmt.Printf("   longest silence of a UDP stream: %v (a datagram every %v)\n", k.UDPGap.Round(time.Millisecond), ecmp.Interval)
	if k.TCPBroken > 0 || k.TCPMoved+k.UDPMoved > 0 {
		return fmt.Errorf("drain broke %d connections, moved %d flows to another server", k.TCPBroken, k.TCPMoved+k.UDPMoved)
	}
	return nil
}

func indent(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("      " + line + "\n")
	}
	return b.String()
}
