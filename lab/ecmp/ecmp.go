// Package ecmp runs several medialb nodes behind the lab's FRR router (lab.AddRouter),
// each announcing the VIPs over BGP, and measures what the clients see when the router's
// ECMP moves them: which node carries a client, which real server answers it, whether
// its established TCP connections survive and how many UDP datagrams are lost while a
// node is drained, killed or added. The lab test (e2e), the demo and the figures of
// BENCHMARKS.md (cmd/medialb-ecmp) use it.
package ecmp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/lbproc"
)

// The traffic VIP and its ports, as in the lab's configuration.
var (
	VIP     = netip.MustParseAddr("192.168.94.110")
	TCPPort = uint16(1935)
	UDPPort = uint16(50000)
)

// HoldTime is the BGP hold time of the lab's sessions: the time a router keeps
// using a node that vanished without closing its session.
const HoldTime = 3 * time.Second

// Cluster is the router and the medialb nodes of a lab.
type Cluster struct {
	Lab    *lab.Lab
	Router *lab.Router
	Bin    string // directory with medialb
	Dir    string // configurations, state, logs
	Nodes  []*Node
	// Servers is how many of the lab's real servers (the first ones) the
	// nodes' configurations name; 0 for all.
	Servers int
	// Echo, if set, receives every node's log events.
	Echo func(node string, e lbproc.Event)
}

// Node is one load balancer of the cluster.
type Node struct {
	lab.Node
	Config string
	Proc   *lbproc.Process // nil before Start and after Kill
}

// New puts lab l's clients behind an FRR router; the lab's load balancers
// become the cluster's nodes (not started). The lab must have its real servers'
// simulated VOS servers running.
func New(l *lab.Lab, bin, dir string) (*Cluster, error) {
	r, err := l.AddRouter(lab.RouterOptions{HoldTime: HoldTime})
	if err != nil {
		return nil, err
	}
	c := &Cluster{Lab: l, Router: r, Bin: bin, Dir: dir}
	for _, n := range l.LBs {
		c.Nodes = append(c.Nodes, &Node{Node: n})
	}
	return c, nil
}

// AddNode adds a load balancer on the bridge (host number host) and starts medialb there.
func (c *Cluster) AddNode(host int) (*Node, error) {
	n, err := c.Router.AddLB(host)
	if err != nil {
		return nil, err
	}
	node := &Node{Node: n}
	c.Nodes = append(c.Nodes, node)
	return node, c.Start(node)
}

// config is a node's configuration: the traffic VIP of the guide (layer 4, direct
// routing, TCP and UDP, source-IP persistence) on all four real servers, a
// one-second health check, the API on the node's address, and BGP to the router.
func (c *Cluster) config(n *Node) string {
	var rs []string
	servers := c.Lab.Servers
	if c.Servers > 0 {
		servers = servers[:min(c.Servers, len(servers))]
	}
	for _, s := range servers {
		rs = append(rs, fmt.Sprintf("      - { name: %s, address: %s }", s.Name, s.Addr4))
	}
	return fmt.Sprintf(`node:
  name: %[1]s
  interface: %[2]s
  state_dir: %[3]s
api:
  listen: %[4]s:9443
  users:
    - name: loadbalancer
      password_hash: "$2a$10$u0cqovdTwUFe8GZsu.3X/OU4fJQhpx.weaiGm3.Z4VcxMEaEsc/Pm"
bgp:
  asn: 65010
  router_id: %[4]s
  peers:
    - { address: %[5]s, asn: %[6]d, hold_time: %[7]s }
virtual_services:
  - name: Harmonic_Traffic
    address: %[8]s
    ports: "1935,554,50000-65535"
    layer: 4
    forwarding: direct-routing
    protocol: tcp+udp
    persistence: { mode: source-ip, timeout: 300s }
    health_check: { type: tcp-connect, port: 8443, interval: 1s, timeout: 500ms }
    real_servers:
%[9]s
`, n.Name, n.Link, filepath.Join(c.Dir, n.Name, "state"), n.Addr4, c.Router.Addr4, c.Router.ASN, HoldTime, VIP, strings.Join(rs, "\n"))
}

// Start writes n's configuration and runs medialb on it until it runs.
func (c *Cluster) Start(n *Node) error {
	dir := filepath.Join(c.Dir, n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	n.Config = filepath.Join(dir, "medialb.yaml")
	if err := os.WriteFile(n.Config, []byte(c.config(n)), 0o600); err != nil {
		return err
	}
	var echo func(lbproc.Event)
	if c.Echo != nil {
		echo = func(e lbproc.Event) { c.Echo(n.Name, e) }
	}
	p, err := lbproc.Start(c.Lab, n.Node, filepath.Join(c.Bin, "medialb"), n.Config, filepath.Join(dir, "medialb.log"), echo)
	if err != nil {
		return err
	}
	n.Proc = p
	if err := p.WaitStarted(context.Background(), 30*time.Second); err != nil {
		return fmt.Errorf("%s: %w; log: %s", n.Name, err, p.LogPath)
	}
	return nil
}

// SetServers names the first k real servers in the configuration of every node
// of ns and reloads them through the API (POST /api/v1/reload).
func (c *Cluster) SetServers(ctx context.Context, k int, ns ...*Node) error {
	c.Servers = k
	for _, n := range ns {
		if err := os.WriteFile(n.Config, []byte(c.config(n)), 0o600); err != nil {
			return err
		}
		if _, err := c.API(ctx, n, "POST", "/api/v1/reload"); err != nil {
			return err
		}
	}
	return nil
}

// Close stops every node (SIGTERM) and the router's daemons; the lab is the caller's.
func (c *Cluster) Close() error {
	defer c.Router.Close()
	var first error
	for _, n := range c.Nodes {
		if n.Proc != nil {
			if err := n.Proc.Stop(15 * time.Second); err != nil && first == nil {
				first = fmt.Errorf("%s: %w", n.Name, err)
			}
		}
	}
	return first
}

// Paths returns the nodes the router spreads the VIP over now.
func (c *Cluster) Paths() ([]netip.Addr, error) { return c.Router.NextHops(VIP) }

// WaitPaths waits until the router's route to the VIP has exactly the nodes
// want, polling every 5 ms, and returns how long that took.
func (c *Cluster) WaitPaths(ctx context.Context, timeout time.Duration, want ...*Node) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	var got []netip.Addr
	for {
		var err error
		if got, err = c.Paths(); err != nil {
			return 0, err
		}
		if sameNodes(got, want) {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("router's paths to %s: %v, want %v after %s", VIP, got, names(want), timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sameNodes(got []netip.Addr, want []*Node) bool {
	if len(got) != len(want) {
		return false
	}
	for _, n := range want {
		found := false
		for _, a := range got {
			found = found || a == n.Addr4
		}
		if !found {
			return false
		}
	}
	return true
}

func names(ns []*Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name+"="+n.Addr4.String())
	}
	return out
}

// NodeOf returns which node the router sends each source to (by name; "" for none).
func (c *Cluster) NodeOf(srcs []netip.Addr) (map[netip.Addr]string, error) {
	out := make(map[netip.Addr]string, len(srcs))
	for _, s := range srcs {
		gw, err := c.Router.NodeFor(s, VIP)
		if err != nil {
			return nil, err
		}
		out[s] = ""
		for _, n := range c.Nodes {
			if n.Addr4 == gw {
				out[s] = n.Name
			}
		}
	}
	return out, nil
}

// API calls node n's REST API with the lab's user.
func (c *Cluster) API(ctx context.Context, n *Node, method, path string) ([]byte, error) {
	code, body, err := n.Proc.API(ctx, method, "9443", path, "loadbalancer", "loadbalancer")
	if err != nil {
		return nil, fmt.Errorf("%s %s on %s: %w", method, path, n.Name, err)
	}
	if code != 200 {
		return body, fmt.Errorf("%s %s on %s: %d %s", method, path, n.Name, code, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// Overview is the part of a node's overview the cluster reads.
type Overview struct {
	BGP *struct {
		State     string   `json:"state"`
		Announced []string `json:"announced"`
		Peers     []struct {
			Address, State string
		} `json:"peers"`
	} `json:"bgp"`
	Services []struct {
		Name          string `json:"name"`
		ActiveClients int64  `json:"active_clients"`
		Packets       uint64 `json:"packets"`
	} `json:"services"`
}

// Overview reads node n's overview.
func (c *Cluster) Overview(ctx context.Context, n *Node) (Overview, error) {
	var ov Overview
	body, err := c.API(ctx, n, "GET", "/api/v1/overview")
	if err == nil {
		err = json.Unmarshal(body, &ov)
	}
	return ov, err
}

// WaitAnnounced waits until every node of ns has its BGP session up and
// announces the VIP.
func (c *Cluster) WaitAnnounced(ctx context.Context, timeout time.Duration, ns ...*Node) error {
	deadline := time.Now().Add(timeout)
	for _, n := range ns {
		for {
			ov, err := c.Overview(ctx, n)
			if err == nil && ov.BGP != nil && len(ov.BGP.Peers) > 0 && ov.BGP.Peers[0].State == "established" &&
				len(ov.BGP.Announced) > 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s does not announce %s within %s (overview %+v, %v)", n.Name, VIP, timeout, ov.BGP, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}
