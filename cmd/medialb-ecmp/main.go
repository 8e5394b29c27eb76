// Command medialb-ecmp measures medialb nodes behind an FRR router's BGP ECMP in the
// namespace lab (make bench-ecmp): how the router spreads clients over two and three
// nodes, and what established clients see when a node is added, drained, brought back,
// killed with SIGKILL, or lost with its link: the router's reaction time, clients moved,
// TCP connections broken, flows answered by another real server, UDP datagrams lost.
// With --out it rewrites the part of the file between <!-- ecmp:begin --> and
// <!-- ecmp:end -->.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/ecmp"
	"github.com/medialb/medialb/perf"
)

const (
	beginMarker = "<!-- ecmp:begin -->"
	endMarker   = "<!-- ecmp:end -->"
)

func main() {
	bin := flag.String("bin", "bin", "`directory` with medialb and vossim")
	clients := flag.Int("clients", 100, "client source addresses (the spread)")
	flows := flag.Int("flows", 40, "clients with an established TCP connection and a UDP stream during the changes")
	out := flag.String("out", "", "rewrite the ecmp section of this Markdown `file` (BENCHMARKS.md)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "medialb-ecmp: needs root (network namespaces, XDP)")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	section, err := run(ctx, *bin, *clients, *flows)
	if err != nil {
		fmt.Fprintf(os.Stderr, "medialb-ecmp: %v\n", err)
		os.Exit(1)
	}
	fmt.Print(section)
	if *out != "" {
		if err := perf.UpdateSection(*out, section, beginMarker, endMarker); err != nil {
			fmt.Fprintf(os.Stderr, "medialb-ecmp: %v\n", err)
			os.Exit(1)
		}
	}
}

func run(ctx context.Context, bin string, clients, nflows int) (string, error) {
	bin, _ = filepath.Abs(bin)
	tmp, err := os.MkdirTemp("", "medialb-ecmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	l, err := lab.New(lab.Options{Prefix: lab.Prefix("ecm"), NoIPv6: true, LoadBalancers: 2, Clients: clients,
		Servers: lab.DefaultServers(5)})
	if err != nil {
		return "", err
	}
	defer l.Close()
	if err := l.StartVOS(filepath.Join(bin, "vossim")); err != nil {
		return "", err
	}
	c, err := ecmp.New(l, bin, tmp)
	if err != nil {
		return "", err
	}
	c.Servers = 4 // the fifth joins later
	defer c.Close()
	lb1, lb2 := c.Nodes[0], c.Nodes[1]
	for _, n := range c.Nodes {
		if err := c.Start(n); err != nil {
			return "", err
		}
	}
	if err := c.WaitAnnounced(ctx, 30*time.Second, lb1, lb2); err != nil {
		return "", err
	}
	if _, err := c.WaitPaths(ctx, 10*time.Second, lb1, lb2); err != nil {
		return "", err
	}
	srcs := l.Client.Sources4
	spread2, _, err := c.Spread(srcs)
	if err != nil {
		return "", err
	}
	fsrcs := srcs[:min(nflows, len(srcs))]
	f, err := ecmp.Open(ctx, l, fsrcs)
	if err != nil {
		return "", err
	}
	defer f.Close()
	nodes := func(ns ...**ecmp.Node) func() []*ecmp.Node {
		return func() []*ecmp.Node {
			var out []*ecmp.Node
			for _, n := range ns {
				out = append(out, *n)
			}
			return out
		}
	}
	var lb3 *ecmp.Node
	var spread3 map[string]int
	hold := ecmp.HoldTime + 5*time.Second
	type stepT struct {
		what    string
		timeout time.Duration
		change  func() error
		want    func() []*ecmp.Node
	}
	steps := []stepT{
		{"nothing (the baseline: two nodes, no change)", 5 * time.Second, func() error { return nil }, nodes(&lb1, &lb2)},
		{"lb3 added (from medialb's start to the router using it)", 40 * time.Second,
			func() (err error) { lb3, err = c.AddNode(4); return err }, nodes(&lb1, &lb2, &lb3)},
		{"lb1 drained (POST /api/v1/node/drain)", 10 * time.Second, func() error { return c.Drain(ctx, lb1) }, nodes(&lb2, &lb3)},
		{"lb1 back (POST /api/v1/node/online)", 10 * time.Second, func() error { return c.Online(ctx, lb1) }, nodes(&lb1, &lb2, &lb3)},
		{"lb3 killed (kill -9 of medialb)", hold, func() error { lb3.Proc.Kill(); return nil }, nodes(&lb1, &lb2)},
		{"lb2 lost (its link down: no word to the router, hold time " + ecmp.HoldTime.String() + ")", hold,
			func() error { return c.SetLink(lb2, false) }, nodes(&lb1)},
		{"lb2's link back (its speaker reconnects)", 20 * time.Second, func() error { return c.SetLink(lb2, true) }, nodes(&lb1, &lb2)},
	}
	var evs []ecmp.Event
	measure := func(f *ecmp.Flows, fsrcs []netip.Addr, steps ...stepT) error {
		for _, st := range steps {
			fmt.Fprintf(os.Stderr, "medialb-ecmp: %s\n", st.what)
			ev, err := c.Measure(ctx, f, st.what, fsrcs, st.timeout, st.change, st.want)
			if err != nil {
				return err
			}
			evs = append(evs, ev)
			if lb3 != nil && spread3 == nil {
				if spread3, _, err = c.Spread(srcs); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := measure(f, fsrcs, steps...); err != nil {
		return "", err
	}
	// Persistence across nodes, where the Maglev tables alone do not carry it: clients
	// that arrive now (so each node knows only its own), then a fifth real server on
	// both nodes (Maglev moves about a fifth of all clients to it; the persistence
	// entries keep the established ones where they are), then lb1 drained: its
	// clients reach lb2, which has no entry for them.
	psrcs := srcs[len(fsrcs):min(2*len(fsrcs), len(srcs))]
	f2, err := ecmp.Open(ctx, l, psrcs)
	if err != nil {
		return "", err
	}
	defer f2.Close()
	if err := measure(f2, psrcs,
		stepT{"new clients; then a fifth real server added on lb1 and lb2 (reload; no route change)", 5 * time.Second,
			func() error { return c.SetServers(ctx, 5, lb1, lb2) }, nodes(&lb1, &lb2)},
		stepT{"the same clients; lb1 drained after the fifth server came", 10 * time.Second,
			func() error { return c.Drain(ctx, lb1) }, nodes(&lb2)},
	); err != nil {
		return "", err
	}
	return report(len(srcs), len(fsrcs), spread2, spread3, evs), nil
}

func report(clients, flows int, spread2, spread3 map[string]int, evs []ecmp.Event) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("%s\n## BGP ECMP: several active nodes behind a router (lab)\n\n", beginMarker)
	w("`make bench-ecmp` (`bin/medialb-ecmp --out BENCHMARKS.md`), %s, on the shared 2-core machine. ", time.Now().UTC().Format("2006-01-02"))
	w("The namespace lab with an FRR router (Debian's `frr`: zebra and bgpd, `maximum-paths 8`, hold time %s, ", ecmp.HoldTime)
	w("the Linux kernel's ECMP hashing source and destination address) between %d clients and medialb nodes on their own veths; ", clients)
	w("each node runs the guide's `Harmonic_Traffic` (layer 4, direct routing, source-IP persistence) on four real servers (a fifth added later) with the same `node.hash_seed` and announces it over BGP (embedded GoBGP); ")
	w("the real servers answer the clients through the router. ")
	w("%d clients keep a TCP connection (a line each way every %s) and a UDP stream (a datagram every %s) open through every change; ", flows, ecmp.Interval, ecmp.Interval)
	w("a connection counts as broken when it is reset or goes %s without an answer.\n\n", ecmp.BrokenAfter)
	w("### Spread of clients over the nodes (the router's choice per source address)\n\n")
	w("Two nodes:\n\n%s\nThree nodes:\n\n%s\n", ecmp.SpreadTable(spread2, clients), ecmp.SpreadTable(spread3, clients))
	w("### Nodes added, drained, killed, lost\n\n")
	w("UDP datagrams counted from the change until a second after the router's change: sent minus answered in that window, so an answer that comes late ")
	w("counts as lost in one window and found in the next (on this shared machine the baseline row shows that noise). ")
	w("The longest silence is the longest time between two answers of one stream in the window (a datagram every %s: %s is the normal gap), ", ecmp.Interval, ecmp.Interval)
	w("the outage a media stream saw.\n\n%s\n", ecmp.EventTable(evs))
	w("**Persistence across nodes.** Up to the fifth server, every flow the router moved to another node was answered by the same real server there: ")
	w("the nodes' Maglev tables are identical (same real servers, same weights, same `node.hash_seed`), so the consistent hash alone lands a moved client where it was, ")
	w("and no persistence entry has to travel with it. The last two rows show where that ends: a client keeps its server through a change of the server set ")
	w("only on the node that holds its persistence entry. After the fifth server joined, Maglev sends about a fifth of all sources to it; ")
	w("lb1's established clients stay on their servers through lb1's entries, but when lb1 is drained they reach lb2, which has no entry for them, ")
	w("and those whose Maglev slot moved land on the new server (their TCP connections are reset by it). Persistence entries are not shared between BGP nodes ")
	w("(the HA pair's sync channel is for two nodes); so drain a node only after the persistence timeout has passed since the last change of its services' servers, ")
	w("or accept that share of moved clients.\n\n")
	w("**Drain, kill, loss.** A drain withdraws the routes and keeps forwarding what still arrives: no connection breaks, and the UDP streams lose what the table says. A `kill -9` closes the BGP session with the process, so the router drops the node ")
	w("within about 0.1 s; the datagrams sent to it in between are lost, TCP retransmits, no connection breaks (the node's layer-4 VIPs are not local addresses, ")
	w("so its kernel drops what still arrives instead of resetting it). A node that vanishes without a word (power, link) is used until the hold time runs out: ")
	w("its share of those seconds' UDP datagrams is lost, and TCP connections survive by retransmission. Adding a node moves clients to it (the router's ECMP rehashes) ")
	w("and breaks none. The UDP counts carry a noise of a datagram or two: those in flight at the window's edges.\n")
	w("%s\n", endMarker)
	return b.String()
}
