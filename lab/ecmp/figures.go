package ecmp

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/medialb/medialb/lab"
)

// Event is what the clients saw around one change of the cluster.
type Event struct {
	What string
	// Router is the time from the change until the router's route to the VIP
	// had the nodes it should (a node gone out, or a new one in).
	Router time.Duration
	// Moved counts the clients the router sends to another node afterwards.
	Moved, Clients int
	// Counts are the flows' outcomes; UDPSent and UDPLost are those of the
	// window from the change to a second after the router's change.
	Counts Counts
}

// Spread counts the clients the router sends to each node.
func (c *Cluster) Spread(srcs []netip.Addr) (map[string]int, map[netip.Addr]string, error) {
	on, err := c.NodeOf(srcs)
	if err != nil {
		return nil, nil, err
	}
	n := map[string]int{}
	for _, name := range on {
		n[name]++
	}
	return n, on, nil
}

// Measure runs change, waits until the router's paths are the nodes want
// returns (asked after change, so that it may name a node change added), and
// reports what the flows saw.
func (c *Cluster) Measure(ctx context.Context, f *Flows, what string, srcs []netip.Addr, timeout time.Duration,
	change func() error, want func() []*Node) (Event, error) {
	ev := Event{What: what, Clients: len(srcs)}
	_, before, err := c.Spread(srcs)
	if err != nil {
		return ev, err
	}
	k0 := f.Counts()
	f.ResetGaps()
	start := time.Now()
	if err := change(); err != nil {
		return ev, fmt.Errorf("%s: %w", what, err)
	}
	if _, err = c.WaitPaths(ctx, timeout, want()...); err != nil {
		return ev, fmt.Errorf("%s: %w", what, err)
	}
	ev.Router = time.Since(start)
	time.Sleep(time.Second)
	Settle()
	ev.Counts = f.Counts().Since(k0)
	_, after, err := c.Spread(srcs)
	if err != nil {
		return ev, err
	}
	for _, s := range srcs {
		if before[s] != after[s] {
			ev.Moved++
		}
	}
	return ev, nil
}

// SetLink takes n's link down or up at the switch. Down, the node is gone
// without a word, as in a power loss: the router notices when the BGP hold time
// runs out. Up again, the node's speaker reconnects.
func (c *Cluster) SetLink(n *Node, up bool) error {
	state := map[bool]string{true: "up", false: "down"}[up]
	out, err := lab.Exec(c.Lab.Switch, "ip", "link", "set", n.SwitchPort, state).CombinedOutput()
	if err != nil {
		return fmt.Errorf("set %s %s: %w: %s", n.SwitchPort, state, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Drain drains node n through its API.
func (c *Cluster) Drain(ctx context.Context, n *Node) error {
	_, err := c.API(ctx, n, "POST", "/api/v1/node/drain")
	return err
}

// Online puts node n back through its API.
func (c *Cluster) Online(ctx context.Context, n *Node) error {
	_, err := c.API(ctx, n, "POST", "/api/v1/node/online")
	return err
}

// SpreadTable renders clients per node as a Markdown table.
func SpreadTable(spread map[string]int, total int) string {
	names := make([]string, 0, len(spread))
	for n := range spread {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("| node | clients | share |\n| --- | --- | --- |\n")
	for _, n := range names {
		label := n
		if label == "" {
			label = "(none)"
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f%% |\n", label, spread[n], 100*float64(spread[n])/float64(max(total, 1)))
	}
	return b.String()
}

// EventTable renders events as a Markdown table.
func EventTable(evs []Event) string {
	var b strings.Builder
	b.WriteString("| change | router done after | clients moved to another node | TCP connections broken | flows answered by another real server | UDP datagrams lost (of sent) | longest UDP silence of a stream |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, e := range evs {
		k := e.Counts
		fmt.Fprintf(&b, "| %s | %s | %d of %d | %d of %d | %d of %d | %d of %d (%.2f%%) | %s |\n",
			e.What, e.Router.Round(time.Millisecond), e.Moved, e.Clients, k.TCPBroken, k.TCP,
			k.TCPMoved+k.UDPMoved, k.TCP+k.UDP, k.UDPLost, k.UDPSent, 100*float64(k.UDPLost)/float64(max(k.UDPSent, 1)),
			k.UDPGap.Round(time.Millisecond))
	}
	return b.String()
}
